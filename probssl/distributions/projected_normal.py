"""Projected normal distribution on the unit hypersphere S^{d-1}.

    u ~ N(m, Σ),  Σ = diag(σ²),   z = u / ‖u‖.

This is the posterior family of Variational Contrastive Learning (Jeong, Kim & Hero 2025):
an encoder outputs (m, σ) and the embedding is the direction of a Gaussian draw.

Exact density w.r.t. the surface measure of S^{d-1} (integrate the Gaussian along the ray
{s z : s > 0} with the radial Jacobian s^{d-1}):

    p(z) = ∫_0^∞ N(s z; m, Σ) s^{d-1} ds.

With x = Σ^{-1/2} m, y = Σ^{-1/2} z, a = ‖y‖² = zᵀΣ⁻¹z, b = xᵀy = zᵀΣ⁻¹m, t = b/√a and the
substitution r = s√a:

    log p(z) = -(d/2) log 2π - ½ log|Σ| - ½ mᵀΣ⁻¹m - (d/2) log a + log I_d(t),
    I_d(t)   = ∫_0^∞ r^{d-1} exp(-r²/2 + r t) dr        (see ``special.py``).

For concentrated posteriors (‖m‖/σ ~ 10³) the terms -½mᵀΣ⁻¹m and log I_d(t) ≈ t²/2 are both
~10⁵ and cancel. We therefore evaluate ``-½‖x_⊥‖² + [log I_d(t) - t²/2]`` with
x_⊥ = x - (b/a) y (so ‖x‖² = ‖x_⊥‖² + t², Pythagoras) — both parts are small and computed
without cancellation, so float32 stays accurate.
"""

from __future__ import annotations

import math

import torch
from torch.distributions import constraints

from .base import DiagonalScaleScores, Posterior, uncertainty_score
from .special import DEFAULT_NUM_NODES, log_projected_normal_integral_scaled
from .uniform_sphere import sphere

__all__ = ["ProjectedNormal"]

_LOG_2PI = math.log(2.0 * math.pi)


class ProjectedNormal(DiagonalScaleScores, Posterior):
    """z = u/‖u‖ with u ~ N(loc, diag(scale²)), a distribution on S^{d-1}.

    Args:
        loc: mean m of the underlying Gaussian, shape [..., d] with d ≥ 2.
        scale: standard deviations σ > 0, shape broadcastable to [..., d].
        num_nodes: Gauss–Legendre nodes of the log I_d quadrature (default 64).

    Shapes: batch_shape = broadcast(loc, scale).shape[:-1], event_shape = (d,).

    * ``rsample(sample_shape)``: reparameterised (u = m + σ ⊙ ε, z = u/‖u‖), shape
      sample_shape + batch_shape + (d,).
    * ``log_prob(z)``: EXACT (1-D quadrature, ~1e-15 relative in float64), shape
      broadcast(z.shape[:-1], batch_shape). ``z`` must have unit norm (checked when
      validate_args is on).
    * ``entropy(num_samples=64)``: Monte-Carlo estimate -1/S Σ_s log p(z_s), z_s ~ p,
      S = ``entropy_num_samples`` (64) unless given; reparameterised, hence differentiable,
      but random (standard error ~ std(log p)/√S).
    * ``mean`` has no closed form: ``mc_mean(num_samples)`` is the Monte-Carlo estimate of
      E[z] ∈ ℝ^d (‖E z‖ < 1). The deterministic summary is ``mean_direction`` = m/‖m‖.
    * scores (``uncertainty(kind)``, shape batch_shape): ``angular_spread`` = sqrt(mean_i σ_i²)/‖m‖,
      the typical angular spread in radians for a concentrated posterior (u deviates from m by
      ~σ per axis, which tilts the direction by ~σ/‖m‖; 0 for σ → 0, → ∞ towards the uniform,
      ‖m‖ clamped at machine epsilon so it stays finite); ``log_det_cov`` = Σ log σ_i² (VCL's
      log det K); ``sigma_mean``; ``trace``.
    """

    arg_constraints = {
        "loc": constraints.real_vector,
        "scale": constraints.independent(constraints.positive, 1),
    }
    support = sphere
    has_rsample = True

    #: Monte-Carlo sample count of ``entropy()``.
    entropy_num_samples = 64
    # VCL's log det K: it ranked above angular_spread on both uncertainty suites (docs/uncertainty.md)
    default_uncertainty = "log_det_cov"

    def __init__(self, loc: torch.Tensor, scale, validate_args: bool | None = None, num_nodes: int = DEFAULT_NUM_NODES):
        loc = torch.as_tensor(loc)
        if not loc.is_floating_point():
            loc = loc.to(torch.get_default_dtype())
        scale = torch.as_tensor(scale, dtype=loc.dtype, device=loc.device)
        if loc.dim() < 1 or loc.shape[-1] < 2:
            raise ValueError(f"loc must have shape [..., d] with d >= 2, got {tuple(loc.shape)}")
        if scale.dim() == 0:
            scale = scale.expand(loc.shape[-1:])
        self.loc, self.scale = torch.broadcast_tensors(loc, scale)
        self.num_nodes = int(num_nodes)
        super().__init__(self.loc.shape[:-1], self.loc.shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(ProjectedNormal, _instance)
        shape = torch.Size(batch_shape) + self.event_shape
        new.loc = self.loc.expand(shape)
        new.scale = self.scale.expand(shape)
        new.num_nodes = self.num_nodes
        super(ProjectedNormal, new).__init__(torch.Size(batch_shape), self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def dim(self) -> int:
        """Ambient dimension d (the sphere is S^{d-1})."""
        return self.event_shape[0]

    def rsample(self, sample_shape: torch.Size | tuple = torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        eps = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        u = self.loc + self.scale * eps
        # ‖u‖ = 0 has probability zero; the clamp only prevents 0/0 on a literal zero.
        norm = torch.linalg.vector_norm(u, dim=-1, keepdim=True).clamp_min(torch.finfo(u.dtype).tiny)
        return u / norm

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        d = self.dim
        x = self.loc / self.scale  # Σ^{-1/2} m
        y = value / self.scale  # Σ^{-1/2} z
        a = (y * y).sum(-1)  # zᵀΣ⁻¹z > 0
        b = (x * y).sum(-1)  # zᵀΣ⁻¹m
        t = b / a.sqrt()
        # ‖x‖² = ‖x_⊥‖² + t²: keep the residual, whose norm is small for concentrated p.
        x_perp = x - (b / a).unsqueeze(-1) * y
        perp2 = (x_perp * x_perp).sum(-1)
        log_det_half = torch.log(self.scale).sum(-1)  # ½ log|Σ|
        return (
            -0.5 * d * _LOG_2PI
            - log_det_half
            - 0.5 * perp2
            - 0.5 * d * torch.log(a)
            + log_projected_normal_integral_scaled(t, d, self.num_nodes)
        )

    def entropy(self, num_samples: int | None = None) -> torch.Tensor:
        """Monte-Carlo entropy -E[log p(z)] from ``num_samples`` (default 64) draws."""
        n = self.entropy_num_samples if num_samples is None else int(num_samples)
        z = self.rsample((n,))
        return -self.log_prob(z).mean(0)

    @property
    def mean(self) -> torch.Tensor:
        raise NotImplementedError(
            "ProjectedNormal.mean has no closed form: use mc_mean(num_samples) for a Monte-Carlo estimate "
            "or mean_direction (m/||m||) for the deterministic summary"
        )

    @property
    def mean_direction(self) -> torch.Tensor:
        """m/‖m‖, shape batch_shape + (d,) (the mode for isotropic σ)."""
        norm = torch.linalg.vector_norm(self.loc, dim=-1, keepdim=True)
        return self.loc / norm.clamp_min(torch.finfo(self.loc.dtype).tiny)

    @uncertainty_score(
        "sqrt(mean_i sigma_i^2) / ||m||: the typical angular spread (radians) of the projected direction"
    )
    def angular_spread(self) -> torch.Tensor:
        """sqrt(mean_i σ_i²) / ‖m‖ (dimensionless angular spread), shape batch_shape."""
        rms_scale = self.scale.pow(2).mean(-1).sqrt()
        norm = torch.linalg.vector_norm(self.loc, dim=-1).clamp_min(torch.finfo(self.loc.dtype).eps)
        return rms_scale / norm
