"""KL divergences: KL(ProjectedNormal ‖ uniform on the sphere) and torch ``register_kl`` entries.

KL(PN(m, σ) ‖ Unif(S^{d-1})) has no closed form. Three estimators share one entry point,
:func:`kl_projected_normal_uniform`:

``"mc"``
    Exact KL by Monte Carlo: E_q[log q(z)] + log A_{d-1} with reparameterised z ~ q and the
    exact ``ProjectedNormal.log_prob``. Unbiased, differentiable, random; costs a quadrature
    per sample.
``"gaussian-bound"``
    KL(N(m, Σ) ‖ N(0, I)) = ½[Σσ² + ‖m‖² - d - Σ log σ²]. An upper bound by the data-processing
    inequality: z = u/‖u‖ maps N(m, Σ) to q and N(0, I) to the uniform, and a common map
    cannot increase KL. Loose: it is > 0 at every isotropic σ ≠ 1 even though q is then
    uniform.
``"scaled-bound"``
    The same bound with prior N(0, cI), which also projects to the uniform, minimised over c
    (c* = (Σσ² + ‖m‖²)/d): ½[d log((Σσ² + ‖m‖²)/d) - Σ log σ²]. Tighter than the Gaussian bound
    (≤ it for every input) and exactly 0 when m = 0 and σ is isotropic, i.e. when q is uniform.
    Closed form, O(d): the default for training.

So gaussian-bound ≥ scaled-bound ≥ KL(q ‖ uniform) = E[mc] ≥ 0.

Registration decision: ``kl_divergence(ProjectedNormal, HypersphericalUniform)`` is registered
only to raise a NotImplementedError that points here. torch's ``kl_divergence`` contract is
an exact, deterministic value; the exact value is only available by Monte Carlo (random), and
the deterministic estimators are upper bounds — silently returning either would surprise a
caller (e.g. a bound reported as "the KL" in an evaluation). Callers choose explicitly.
"""

from __future__ import annotations

import torch
from torch.distributions.kl import register_kl

from .bernoulli import StraightThroughBernoulli, kl_bernoulli, kl_bernoulli_uniform
from .gaussian import DiagonalNormal, kl_diagonal_normal, kl_diagonal_normal_standard
from .projected_normal import ProjectedNormal
from .special import log_sphere_area
from .uniform_sphere import HypersphericalUniform

__all__ = [
    "KL_ESTIMATORS",
    "kl_bernoulli",
    "kl_bernoulli_uniform",
    "kl_diagonal_normal",
    "kl_diagonal_normal_standard",
    "kl_projected_normal_uniform",
]

#: Valid ``estimator`` names of :func:`kl_projected_normal_uniform`.
KL_ESTIMATORS = ("mc", "gaussian-bound", "scaled-bound")


def kl_projected_normal_uniform(
    loc: torch.Tensor, scale, estimator: str = "scaled-bound", normalize: bool = False, num_samples: int = 16
) -> torch.Tensor:
    """KL(PN(loc, scale) ‖ Unif(S^{d-1})) or an upper bound on it, shape [...] from loc [..., d].

    Args:
        loc: Gaussian mean m, [..., d].
        scale: σ > 0, broadcastable to [..., d].
        estimator: one of :data:`KL_ESTIMATORS` (see module docstring for formulas).
        normalize: divide by d (a per-dimension KL, comparable across embedding sizes).
        num_samples: Monte-Carlo draws per batch element for ``"mc"`` (ignored otherwise).

    All three are differentiable w.r.t. loc and scale; the bounds are vectorised closed forms
    (no loop over the batch), the mc estimator costs num_samples × batch quadratures.
    """
    if estimator not in KL_ESTIMATORS:
        raise ValueError(f"unknown KL estimator {estimator!r}; valid estimators: {', '.join(KL_ESTIMATORS)}")
    loc = torch.as_tensor(loc)
    scale = torch.as_tensor(scale, dtype=loc.dtype, device=loc.device)
    loc, scale = torch.broadcast_tensors(loc, scale)
    d = loc.shape[-1]
    log_var = 2.0 * torch.log(scale)
    sq_norm = (loc * loc).sum(-1)

    if estimator == "mc":
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        q = ProjectedNormal(loc, scale, validate_args=False)
        z = q.rsample((int(num_samples),))
        kl = q.log_prob(z).mean(0) + log_sphere_area(d)
    elif estimator == "gaussian-bound":
        # σ² - 1 - log σ² = expm1(v) - v ≥ 0 (v = log σ²): accurate near σ = 1, no cancellation.
        kl = 0.5 * ((torch.expm1(log_var) - log_var).sum(-1) + sq_norm)
        kl = kl.clamp_min(0.0)
    else:  # scaled-bound
        # ½[d log(S/d) - Σ log σ²], S = Σσ² + ‖m‖², written relative to v_max = max log σ²:
        #   d·log(Σ exp(v - v_max) + ‖m‖² e^{-v_max}) / d) + Σ (v_max - v).
        # At m = 0 with isotropic σ every piece is exact (exp(0) = 1, Σ of d ones = d, log 1 = 0),
        # so the bound is exactly 0 there; it also cannot overflow for huge/tiny σ.
        v_max = log_var.max(-1, keepdim=True).values
        ratio_sum = torch.exp(log_var - v_max).sum(-1) + sq_norm * torch.exp(-v_max.squeeze(-1))
        kl = 0.5 * (d * torch.log(ratio_sum / d) + (v_max - log_var).sum(-1))
        kl = kl.clamp_min(0.0)  # ≥ 0 by AM-GM; the clamp only absorbs round-off
    return kl / d if normalize else kl


@register_kl(ProjectedNormal, HypersphericalUniform)
def _kl_pn_uniform(p: ProjectedNormal, q: HypersphericalUniform) -> torch.Tensor:
    raise NotImplementedError(
        "KL(ProjectedNormal || HypersphericalUniform) has no closed form; call "
        "probssl.distributions.kl_projected_normal_uniform(loc, scale, estimator=...) with "
        f"estimator in {KL_ESTIMATORS} ('mc' is exact but random, the bounds are deterministic "
        "upper bounds)."
    )


@register_kl(HypersphericalUniform, HypersphericalUniform)
def _kl_uniform_uniform(p: HypersphericalUniform, q: HypersphericalUniform) -> torch.Tensor:
    if p.dim != q.dim:
        raise ValueError(f"spheres of different dimension: {p.dim} vs {q.dim}")
    shape = torch.broadcast_shapes(p.batch_shape, q.batch_shape)
    return torch.zeros(shape, dtype=p.dtype, device=p.device)


@register_kl(DiagonalNormal, DiagonalNormal)
def _kl_diag_diag(p: DiagonalNormal, q: DiagonalNormal) -> torch.Tensor:
    return kl_diagonal_normal(p, q)


@register_kl(StraightThroughBernoulli, StraightThroughBernoulli)
def _kl_bern_bern(p: StraightThroughBernoulli, q: StraightThroughBernoulli) -> torch.Tensor:
    return kl_bernoulli(p, q)
