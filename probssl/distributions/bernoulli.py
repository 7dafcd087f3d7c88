"""Vector of independent bits with straight-through Gumbel-sigmoid gradients (binary codes)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.distributions import constraints

from .base import Posterior, uncertainty_score

__all__ = ["StraightThroughBernoulli", "anneal_temperature", "kl_bernoulli", "kl_bernoulli_uniform"]

_LOG2 = math.log(2.0)


def _bit_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Per-bit entropy in nats: H = p·softplus(-l) + (1-p)·softplus(l), p = σ(l).

    Uses -log p = softplus(-l), -log(1-p) = softplus(l); each product is small when its
    factor is, so there is no cancellation for |l| large (H → 0 smoothly).
    """
    return torch.sigmoid(logits) * F.softplus(-logits) + torch.sigmoid(-logits) * F.softplus(logits)


class StraightThroughBernoulli(Posterior):
    """Independent Bernoulli bits b ∈ {0,1}^d, P(b_i = 1) = σ(logits_i), event_shape (d,).

    Args:
        logits: shape [..., d].
        temperature: τ > 0 of the binary-concrete relaxation used for gradients. A float, or a 0-dim tensor
            (not checked) for a τ annealed under ``torch.compile``: a float that changes every step makes a
            recompile every step, a tensor's value is not guarded.

    * ``rsample(sample_shape)``: straight-through estimator. Draw logistic noise
      L = log U - log(1-U), set the relaxed sample r = σ((l + L)/τ) (binary concrete /
      Gumbel-sigmoid) and the hard bit h = 1[l + L > 0] (exactly Bernoulli(σ(l))).
      Returns ``h + (r - r.detach())``: the forward value is exactly h ∈ {0, 1} (x - x = 0 in
      floating point, so no rounding leaks into the bits — unlike ``h - r.detach() + r``),
      and the backward pass uses ∂r/∂l = r(1-r)/τ. The gradient is biased (as every
      straight-through estimator), lower τ = less bias, more variance.
    * ``relaxed_rsample(sample_shape)``: r itself (continuous in (0,1)); note E[r] ≠ p for
      τ > 0, but P(r > ½) = p exactly.
    * ``sample``: hard bits without gradient. ``log_prob(b)`` = Σ_i [b_i l_i - softplus(l_i)]
      (exact). ``entropy()`` exact, in nats. ``mean`` = p = σ(l).
    * score ``bit_entropy`` (``uncertainty()``): mean per-bit entropy in bits (H/(d log 2)) ∈ [0, 1],
      shape batch_shape.
    """

    arg_constraints = {"logits": constraints.independent(constraints.real, 1)}
    support = constraints.independent(constraints.boolean, 1)
    has_rsample = True
    default_uncertainty = "bit_entropy"

    def __init__(
        self, logits: torch.Tensor, temperature: float | torch.Tensor = 1.0, validate_args: bool | None = None
    ):
        logits = torch.as_tensor(logits)
        if not logits.is_floating_point():
            logits = logits.to(torch.get_default_dtype())
        if logits.dim() < 1:
            raise ValueError("logits must have shape [..., d]")
        if not isinstance(temperature, torch.Tensor):  # a 0-dim tensor is kept as is, unchecked (see Args)
            temperature = float(temperature)
            if not temperature > 0:
                raise ValueError(f"temperature must be > 0, got {temperature}")
        self.logits = logits
        self.temperature = temperature
        super().__init__(logits.shape[:-1], logits.shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(StraightThroughBernoulli, _instance)
        new.logits = self.logits.expand(torch.Size(batch_shape) + self.event_shape)
        new.temperature = self.temperature
        super(StraightThroughBernoulli, new).__init__(torch.Size(batch_shape), self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def probs(self) -> torch.Tensor:
        return torch.sigmoid(self.logits)

    @property
    def mean(self) -> torch.Tensor:
        return self.probs

    @property
    def mode(self) -> torch.Tensor:
        return (self.logits > 0).to(self.logits.dtype)

    @property
    def variance(self) -> torch.Tensor:
        p = self.probs
        return p * (1.0 - p)

    def _logistic_noise(self, shape: torch.Size) -> torch.Tensor:
        finfo = torch.finfo(self.logits.dtype)
        u = torch.rand(shape, dtype=self.logits.dtype, device=self.logits.device)
        u = u.clamp(finfo.tiny, 1.0 - finfo.eps)  # keep log U and log(1-U) finite
        return torch.log(u) - torch.log1p(-u)

    def _relaxed_and_hard(self, sample_shape) -> tuple[torch.Tensor, torch.Tensor]:
        shape = self._extended_shape(torch.Size(sample_shape))
        pre = self.logits + self._logistic_noise(shape)
        relaxed = torch.sigmoid(pre / self.temperature)
        hard = (pre > 0).to(self.logits.dtype).detach()
        return relaxed, hard

    def rsample(self, sample_shape: torch.Size | tuple = torch.Size()) -> torch.Tensor:
        relaxed, hard = self._relaxed_and_hard(sample_shape)
        return hard + (relaxed - relaxed.detach())

    def relaxed_rsample(self, sample_shape: torch.Size | tuple = torch.Size()) -> torch.Tensor:
        """The binary-concrete sample σ((l + L)/τ) ∈ (0, 1) (no straight-through)."""
        relaxed, _ = self._relaxed_and_hard(sample_shape)
        return relaxed

    def sample(self, sample_shape: torch.Size | tuple = torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        with torch.no_grad():
            return torch.bernoulli(self.probs.expand(shape))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        value = value.to(self.logits.dtype)
        return (value * self.logits - F.softplus(self.logits)).sum(-1)

    def entropy(self) -> torch.Tensor:
        return _bit_entropy(self.logits).sum(-1)

    @uncertainty_score("mean per-bit entropy in bits, in [0, 1] (0: every bit certain, 1: coin flips)")
    def bit_entropy(self) -> torch.Tensor:
        """Mean per-bit entropy in bits, in [0, 1]; shape batch_shape."""
        return _bit_entropy(self.logits).mean(-1) / _LOG2


def kl_bernoulli_uniform(logits: torch.Tensor) -> torch.Tensor:
    """Σ_i KL(Bern(p_i) ‖ Bern(½)) = Σ_i [p log 2p + (1-p) log 2(1-p)] = Σ_i (log 2 - H_i).

    Shape [...] from logits [..., d]. Uses the cancellation-free per-bit entropy (so the
    value is ≥ 0, exactly 0 at logits 0, and → d·log 2 smoothly as |logits| → ∞); clamped at 0
    against round-off.
    """
    return (_LOG2 - _bit_entropy(logits)).clamp_min(0.0).sum(-1)


def kl_bernoulli(p: StraightThroughBernoulli, q: StraightThroughBernoulli) -> torch.Tensor:
    """KL(p ‖ q) = Σ_i [p_i (log p_i - log q_i) + (1-p_i)(log(1-p_i) - log(1-q_i))], closed form."""
    lp, lq = p.logits, q.logits
    pp = torch.sigmoid(lp)
    # log p = -softplus(-l), log(1-p) = -softplus(l)
    term1 = pp * (F.softplus(-lq) - F.softplus(-lp))
    term0 = torch.sigmoid(-lp) * (F.softplus(lq) - F.softplus(lp))
    return (term1 + term0).sum(-1)


def anneal_temperature(step: int, start: float = 1.0, end: float = 0.5, steps: int = 10_000) -> float:
    """Exponential temperature schedule τ(step) = start · (end/start)^{clip(step/steps, 0, 1)}.

    Equals ``start`` at step ≤ 0 and ``end`` from ``steps`` on (clamped); ``steps`` ≤ 0 means
    "already annealed" and returns ``end``. Both temperatures must be > 0.
    """
    if not (start > 0 and end > 0):
        raise ValueError(f"temperatures must be > 0, got start={start}, end={end}")
    if steps <= 0:
        return float(end)
    frac = min(max(step / steps, 0.0), 1.0)
    return float(start * (end / start) ** frac)
