"""Power Spherical distribution on S^{d-1} (De Cao & Aziz 2020, "The Power Spherical distribution").

    p(z; μ, κ) = (1 + μᵀz)^κ / N(κ, d),     ‖μ‖ = ‖z‖ = 1, κ > 0,
    N(κ, d)    = 2^{α+β} π^β Γ(α) / Γ(α+β),  α = (d-1)/2 + κ,  β = (d-1)/2.

The cosine t = μᵀz has t = 2B - 1 with B ~ Beta(α, β), independent of a direction uniform on the
sphere S^{d-2} orthogonal to μ. Sampling is therefore exact and rejection-free, and
reparameterised through torch's Beta (implicit reparameterisation gradients w.r.t. κ; torch
computes them with approximations accurate to ~1e-3 relative, see the tests).

Numerics (why the code looks the way it does):

* We sample B' = 1 - B ~ Beta(β, α) instead of B: for κ ≫ d the draw B sits at 1 - O(d/κ), where
  float32 keeps only a few digits of 1 - B; B' itself is small and exact to full relative precision,
  and 1 - t = 2B', 1 + t = 2(1 - B'), √(1 - t²) = 2√(B'(1 - B')) follow without cancellation.
* The density is assembled as κ log((1 + t)/2) - [log N - κ log 2]: the two κ log 2 terms (~7e4 at
  κ = 1e5) would cancel in float32 otherwise. log((1 + t)/2) is log1p(-‖μ - z‖²/4) near the mode and
  log(‖μ + z‖²/4) near the antipode (identical for unit vectors), so neither 1 - t nor 1 + t is
  formed by cancellation.
* The scalar functions of κ (log N, entropy, KL) are differences of lgamma/digamma values of size
  ~κ log κ that nearly cancel (KL(κ → 0) = O(κ²) while lgamma(d/2 + κ) ~ 10³ at d = 512). They are
  evaluated in float64 on the [batch] tensor (negligible cost) and cast back, so float32 callers
  get float32-accurate values and gradients at κ ∈ [1e-3, 1e5], d ≤ 512.
"""

from __future__ import annotations

import math

import torch
from torch.distributions.kl import register_kl

from .directional import DirectionalPosterior
from .uniform_sphere import HypersphericalUniform

__all__ = ["PowerSpherical", "householder_rotate", "kl_power_spherical_uniform"]

# KL(κ) uses its Taylor series below κ = β/50 (see kl_power_spherical_uniform).
_KL_SERIES_FRACTION = 0.02


def _as_float64(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float64) if x.dtype != torch.float64 else x


def _ps_scaled_log_normalizer(kappa: torch.Tensor, d: int) -> torch.Tensor:
    """log N(κ, d) - κ log 2 = 2β log 2 + β log π + lgamma(α) - lgamma(α+β), float64, kappa [...] -> [...].

    The κ log 2 part of log N cancels against κ log(1 + μᵀz) ≈ κ log 2 near the mode; both are
    dropped (the density uses log((1 + t)/2)) so that the float32 result never holds a ~κ term.
    """
    k = _as_float64(kappa)
    beta = 0.5 * (d - 1)
    alpha = beta + k
    return 2.0 * beta * math.log(2.0) + beta * math.log(math.pi) + torch.lgamma(alpha) - torch.lgamma(alpha + beta)


def _ps_expected_log_half_one_plus_t(kappa: torch.Tensor, d: int) -> torch.Tensor:
    """E[log((1 + t)/2)] = ψ(α) - ψ(α+β) (since (1 + t)/2 ~ Beta(α, β)), float64."""
    k = _as_float64(kappa)
    beta = 0.5 * (d - 1)
    return torch.digamma(beta + k) - torch.digamma(2.0 * beta + k)


def kl_power_spherical_uniform(concentration: torch.Tensor, dim: int) -> torch.Tensor:
    """KL(PowerSpherical(·, κ) ‖ Unif(S^{dim-1})) in closed form, shape of ``concentration``.

    KL = log|S^{d-1}| - H = κ[ψ(β+κ) - ψ(2β+κ)] + lgamma(2β+κ) - lgamma(β+κ) - lgamma(2β) + lgamma(β),
    β = (d-1)/2. (The constants log 2, log π cancel against log|S^{d-1}| by Legendre's duplication
    formula, so the expression vanishes exactly at κ = 0 and is O(κ²) there.) Independent of the
    mean direction by rotation invariance. Evaluated in float64 and returned in the input dtype;
    differentiable w.r.t. κ.
    """
    kappa = torch.as_tensor(concentration)
    if not kappa.is_floating_point():
        kappa = kappa.to(torch.get_default_dtype())
    d = int(dim)
    if d < 2:
        raise ValueError(f"dim must be >= 2, got {dim}")
    k = _as_float64(kappa)
    beta = 0.5 * (d - 1)
    closed = (
        k * (torch.digamma(beta + k) - torch.digamma(2.0 * beta + k))
        + torch.lgamma(2.0 * beta + k)
        - torch.lgamma(beta + k)
        - (math.lgamma(2.0 * beta) - math.lgamma(beta))
    )
    # For κ ≪ β the closed form is a difference of lgamma values ~β log β that cancel to O(κ²);
    # there use KL = ∫_0^κ s[ψ'(β+s) - ψ'(2β+s)] ds = Σ_m g_m κ^{m+2}/(m! (m+2)),
    # g_m = ψ^{(m+1)}(β) - ψ^{(m+1)}(2β) (radius of convergence β; 6 terms: < 1e-10 relative at κ = β/50).
    small = k < _KL_SERIES_FRACTION * beta
    ks = torch.where(small, k, torch.zeros_like(k))
    series = torch.zeros_like(k)
    b64 = torch.tensor([beta, 2.0 * beta], dtype=torch.float64, device=k.device)
    for m in range(6):
        g = torch.polygamma(m + 1, b64)
        series = series + (g[0] - g[1]).item() * ks ** (m + 2) / (math.factorial(m) * (m + 2))
    kl = torch.where(small, series, closed)
    # KL >= 0 mathematically; float64 round-off of the lgamma differences can leave -1e-16.
    return kl.clamp_min(0.0).to(kappa.dtype)


def _log_half_one_plus_cosine(loc: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """log((1 + μᵀz)/2) for unit vectors, [..., d] -> [...], without cancellation anywhere on the sphere.

    Near the mode (1 + μᵀz)/2 = 1 - ‖μ - z‖²/4, so log1p(-‖μ - z‖²/4) keeps the small deviation exact
    (κ multiplies it, up to 1e5); near the antipode (1 + μᵀz)/2 = ‖μ + z‖²/4 keeps the small value
    exact.
    """
    diff, summ = loc - value, loc + value
    near = (loc * value).sum(-1) >= 0
    # both branches are finite away from z = -μ exactly, so where() cannot leak NaN into gradients
    return torch.where(near, torch.log1p(-0.25 * (diff * diff).sum(-1)), torch.log(0.25 * (summ * summ).sum(-1)))


def householder_rotate(loc: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Apply an orthogonal map R with R e₁ = loc to vectors y (the samples "around e₁").

    Args:
        loc: unit vectors [..., d]; y: [..., d] (broadcastable against loc).
    Returns:
        R y, shape broadcast(loc, y).

    R is the Householder reflection along u = e₁ - μ when μ₁ ≤ 0 and minus the reflection along
    u = e₁ + μ when μ₁ > 0: both send e₁ to μ, and the branch keeps ‖u‖² = 2(1 ± μ₁) ≥ 2, so the
    map is never the ill-conditioned 0/0 reflection with μ ≈ e₁. The two branches are different
    rotations, but y is rotation-invariant about e₁ in our use, so the law of R y is the same.
    """
    e1 = torch.zeros_like(loc)
    e1[..., 0] = 1.0
    flip = loc[..., :1] > 0
    u = torch.where(flip, e1 + loc, e1 - loc)
    sq = (u * u).sum(-1, keepdim=True)  # >= 2 by the branch choice
    reflected = y - (2.0 * (u * y).sum(-1, keepdim=True) / sq) * u
    return torch.where(flip, -reflected, reflected)


def tangent_directions(shape: torch.Size, dtype: torch.dtype, device) -> torch.Tensor:
    """Uniform unit vectors on S^{d-2} embedded as [0, v] ∈ ℝ^d, shape ``shape`` = [..., d]."""
    eps = torch.randn(shape[:-1] + (shape[-1] - 1,), dtype=dtype, device=device)
    # ‖ε‖ = 0 has probability 0; the clamp only guards a literal zero draw.
    v = eps / torch.linalg.vector_norm(eps, dim=-1, keepdim=True).clamp_min(torch.finfo(dtype).tiny)
    return torch.cat([torch.zeros_like(v[..., :1]), v], -1)


class PowerSpherical(DirectionalPosterior):
    """Power Spherical distribution PS(μ, κ) on S^{d-1}: density ∝ (1 + μᵀz)^κ.

    Args:
        loc: mean direction μ, unit vectors [..., d], d ≥ 2 (checked when validate_args is on).
        concentration: κ > 0, shape broadcastable to loc.shape[:-1].

    Shapes: batch_shape = broadcast(loc.shape[:-1], concentration.shape), event_shape = (d,).

    * ``rsample(sample_shape)``: exact, rejection-free, reparameterised in μ and κ; shape
      sample_shape + batch_shape + (d,).
    * ``log_prob(z)``: exact, shape broadcast(z.shape[:-1], batch_shape).
    * ``entropy()`` = log N(κ, d) - κ[log 2 + ψ(α) - ψ(α+β)] (closed form), batch_shape.
    * ``mean`` = E[z] = μ·E[t], E[t] = (α-β)/(α+β) = κ/(κ + d - 1) (De Cao & Aziz, §3); ``mode`` =
      ``mean_direction`` = μ (deterministic).
    * scores (batch_shape, higher = more uncertain): ``expected_cosine_distance`` = 1 - E[μᵀz] =
      (d-1)/(κ+d-1) (the default) and ``concentration_inverse`` = 1/κ. Both are monotone in κ, so
      they rank a batch of one dimension identically; the default is the expected cosine distance
      because it is bounded in (0, 1) (1 = the uniform limit κ → 0, 0 = a point mass), has a
      geometric meaning, and is comparable across embedding sizes, whereas 1/κ is unbounded and its
      scale depends on d (a given κ is far more concentrated in d = 3 than in d = 512).
    * ``kl_divergence(PowerSpherical, HypersphericalUniform)`` is registered (closed form, see
      :func:`kl_power_spherical_uniform`).
    """

    def _cosine_complement_rsample(self, sample_shape: torch.Size) -> torch.Tensor:
        """B' = (1 - t)/2 ~ Beta(β, α), shape sample_shape + batch_shape (reparameterised in κ)."""
        beta = torch.full_like(self.concentration, 0.5 * (self.dim - 1))
        return torch.distributions.Beta(beta, beta + self.concentration).rsample(sample_shape)

    def rsample(self, sample_shape: torch.Size | tuple = torch.Size()) -> torch.Tensor:
        sample_shape = torch.Size(sample_shape)
        shape = self._extended_shape(sample_shape)
        b = self._cosine_complement_rsample(sample_shape).unsqueeze(-1)
        t = 1.0 - 2.0 * b
        # √(1 - t²) = 2√(B'(1 - B')): no cancellation when t → ±1.
        sin = 2.0 * torch.sqrt(b * (1.0 - b))
        v = tangent_directions(shape, self.loc.dtype, self.loc.device)
        e1 = torch.zeros_like(v)
        e1[..., 0] = 1.0
        return householder_rotate(self.loc, t * e1 + sin * v)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        log_half = _log_half_one_plus_cosine(self.loc, value)
        log_norm = _ps_scaled_log_normalizer(self.concentration, self.dim).to(self.concentration.dtype)
        return self.concentration * log_half - log_norm

    def entropy(self) -> torch.Tensor:
        d = self.dim
        k = self.concentration
        # H = log N - κ E[log(1 + t)]; the κ log 2 parts of both terms cancel exactly and are dropped
        h = _ps_scaled_log_normalizer(k, d) - _as_float64(k) * _ps_expected_log_half_one_plus_t(k, d)
        return h.to(k.dtype)

    def expected_cosine(self) -> torch.Tensor:
        """E[μᵀz] = κ/(κ + d - 1), shape batch_shape."""
        return self.concentration / (self.concentration + (self.dim - 1))

    def expected_cosine_distance(self) -> torch.Tensor:
        # (d-1)/(κ+d-1) directly: 1 - κ/(κ+d-1) would lose digits to cancellation at large κ
        return (self.dim - 1) / (self.concentration + (self.dim - 1))


@register_kl(PowerSpherical, HypersphericalUniform)
def _kl_power_spherical_uniform(p: PowerSpherical, q: HypersphericalUniform) -> torch.Tensor:
    if p.dim != q.dim:
        raise ValueError(f"dimension mismatch: PowerSpherical on S^{p.dim - 1}, uniform on S^{q.dim - 1}")
    kl = kl_power_spherical_uniform(p.concentration, p.dim)
    return kl.expand(torch.broadcast_shapes(p.batch_shape, q.batch_shape))
