"""Distributions for probabilistic self-supervised learning (torch.distributions style).

Families (event_shape (d,) throughout; each is a :class:`Posterior` (the contract evaluation relies
on, see :mod:`.base`) with named ``uncertainty(kind)`` scores → [batch_shape], higher = more uncertain):

* :class:`ProjectedNormal` — direction of a diagonal Gaussian on S^{d-1} (VCL posterior);
  exact log_prob by 1-D Gauss–Legendre quadrature (:mod:`.special`).
* :class:`HypersphericalUniform` — uniform on S^{d-1} (VCL prior).
* :class:`PowerSpherical` — density ∝ (1 + μᵀz)^κ, exact rejection-free rsample (De Cao & Aziz 2020).
* :class:`VonMisesFisher` — density ∝ exp(κ μᵀz), Wood's sampler, stable log-Bessel normaliser.
* :class:`DiagonalNormal` — N(m, diag σ²) (SimVAE / SCL posteriors).
* :class:`StraightThroughBernoulli` — bits with straight-through Gumbel-sigmoid gradients.
* :class:`PointMass` — deterministic embeddings of non-probabilistic baselines.

KL helpers: :func:`kl_projected_normal_uniform` (``KL_ESTIMATORS``),
:func:`kl_diagonal_normal_standard`, :func:`kl_bernoulli_uniform`; closed-form KLs are also
registered with ``torch.distributions.kl_divergence`` (importing this package registers them).

Only torch / math / stdlib are used here.
"""

from .base import DiagonalScaleScores, Posterior, uncertainty_score
from .bernoulli import StraightThroughBernoulli, anneal_temperature, kl_bernoulli, kl_bernoulli_uniform
from .gaussian import DiagonalNormal, kl_diagonal_normal, kl_diagonal_normal_standard, kl_diagonal_normals
from .kl import KL_ESTIMATORS, kl_projected_normal_uniform
from .point_mass import PointMass
from .power_spherical import PowerSpherical, kl_power_spherical_uniform
from .projected_normal import ProjectedNormal
from .special import (
    DEFAULT_NUM_NODES,
    gauss_legendre,
    log_projected_normal_integral,
    log_projected_normal_integral_scaled,
    log_sphere_area,
)
from .uniform_sphere import HypersphericalUniform, sphere
from .von_mises_fisher import VonMisesFisher, kl_von_mises_fisher_uniform, log_bessel_iv, vmf_mean_resultant_length

__all__ = [
    "DiagonalScaleScores",
    "Posterior",
    "uncertainty_score",
    "DEFAULT_NUM_NODES",
    "DiagonalNormal",
    "HypersphericalUniform",
    "KL_ESTIMATORS",
    "PointMass",
    "PowerSpherical",
    "VonMisesFisher",
    "ProjectedNormal",
    "StraightThroughBernoulli",
    "anneal_temperature",
    "gauss_legendre",
    "kl_bernoulli",
    "kl_bernoulli_uniform",
    "kl_diagonal_normal",
    "kl_diagonal_normal_standard",
    "kl_diagonal_normals",
    "kl_power_spherical_uniform",
    "kl_projected_normal_uniform",
    "kl_von_mises_fisher_uniform",
    "log_bessel_iv",
    "vmf_mean_resultant_length",
    "log_projected_normal_integral",
    "log_projected_normal_integral_scaled",
    "log_sphere_area",
    "sphere",
]
