"""Diagonal Gaussian over vectors (the posterior of SimVAE and of Gaussian SCL variants)."""

from __future__ import annotations

import math

import torch
from torch.distributions import constraints

from .base import DiagonalScaleScores, Posterior

__all__ = ["DiagonalNormal", "kl_diagonal_normal", "kl_diagonal_normal_standard", "kl_diagonal_normals"]

_LOG_2PI = math.log(2.0 * math.pi)


class DiagonalNormal(DiagonalScaleScores, Posterior):
    """N(loc, diag(scale²)) with event_shape (d,) — like ``Independent(Normal(loc, scale), 1)``.

    Args:
        loc: mean m, shape [..., d].
        scale: standard deviations σ > 0, broadcastable to [..., d].

    Shapes: batch_shape = broadcast(loc, scale).shape[:-1], event_shape = (d,).

    * ``rsample``: m + σ ⊙ ε (reparameterised).
    * ``log_prob(x)`` = Σ_i [-½((x_i - m_i)/σ_i)² - log σ_i - ½ log 2π] (exact).
    * ``entropy()`` = Σ_i [½ log(2πe) + log σ_i] (exact).
    * ``mean`` = m, ``variance`` = σ².
    * scores (``uncertainty(kind)``, shape batch_shape): ``sigma_mean`` = mean_i σ_i (default),
      ``log_det_cov`` = Σ log σ_i², ``trace`` = Σ σ_i².
    """

    arg_constraints = {
        "loc": constraints.real_vector,
        "scale": constraints.independent(constraints.positive, 1),
    }
    support = constraints.real_vector
    has_rsample = True
    default_uncertainty = "sigma_mean"

    def __init__(self, loc: torch.Tensor, scale, validate_args: bool | None = None):
        loc = torch.as_tensor(loc)
        if not loc.is_floating_point():
            loc = loc.to(torch.get_default_dtype())
        scale = torch.as_tensor(scale, dtype=loc.dtype, device=loc.device)
        if loc.dim() < 1:
            raise ValueError("loc must have shape [..., d]")
        if scale.dim() == 0:
            scale = scale.expand(loc.shape[-1:])
        self.loc, self.scale = torch.broadcast_tensors(loc, scale)
        super().__init__(self.loc.shape[:-1], self.loc.shape[-1:], validate_args=validate_args)

    @classmethod
    def standard(
        cls,
        dim: int,
        batch_shape: torch.Size | tuple = (),
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> DiagonalNormal:
        """N(0, I_dim) with the given batch shape (the usual VAE prior)."""
        shape = torch.Size(batch_shape) + (dim,)
        dtype = torch.get_default_dtype() if dtype is None else dtype
        return cls(torch.zeros(shape, dtype=dtype, device=device), torch.ones(shape, dtype=dtype, device=device))

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(DiagonalNormal, _instance)
        shape = torch.Size(batch_shape) + self.event_shape
        new.loc = self.loc.expand(shape)
        new.scale = self.scale.expand(shape)
        super(DiagonalNormal, new).__init__(torch.Size(batch_shape), self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def mean(self) -> torch.Tensor:
        return self.loc

    @property
    def mode(self) -> torch.Tensor:
        return self.loc

    @property
    def variance(self) -> torch.Tensor:
        return self.scale.pow(2)

    @property
    def stddev(self) -> torch.Tensor:
        return self.scale

    def rsample(self, sample_shape: torch.Size | tuple = torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        eps = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        return self.loc + self.scale * eps

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        z = (value - self.loc) / self.scale
        return (-0.5 * z * z - torch.log(self.scale) - 0.5 * _LOG_2PI).sum(-1)

    def entropy(self) -> torch.Tensor:
        return (0.5 * (1.0 + _LOG_2PI) + torch.log(self.scale)).sum(-1)


def kl_diagonal_normal_standard(loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """KL(N(m, diag σ²) ‖ N(0, I)) = ½ Σ_i (σ_i² + m_i² - 1 - log σ_i²), shape [...] from [..., d].

    Evaluated as ½ Σ (expm1(2 log σ) - 2 log σ + m²): σ² - 1 - log σ² = expm1(v) - v with
    v = log σ², which keeps full relative accuracy near σ = 1 and is never negative.
    """
    scale = torch.as_tensor(scale, dtype=loc.dtype, device=loc.device)
    loc, scale = torch.broadcast_tensors(loc, scale)
    v = 2.0 * torch.log(scale)
    return 0.5 * (torch.expm1(v) - v + loc * loc).sum(-1)


def kl_diagonal_normals(
    loc_q: torch.Tensor, scale_q: torch.Tensor, loc_p: torch.Tensor, scale_p: torch.Tensor
) -> torch.Tensor:
    """``KL(N(m_q, diag s_q^2) || N(m_p, diag s_p^2))``, ``[..., d]`` each (broadcast) -> ``[...]``.

    ``0.5 * sum_i [r_i - 1 - log r_i + (m_q - m_p)_i^2 / s_p,i^2]`` with ``r = (s_q / s_p)^2``, evaluated
    as ``expm1(v) - v`` with ``v = log r`` (exact near r = 1, never negative).
    """
    v = 2.0 * (torch.log(scale_q) - torch.log(scale_p))
    diff = (loc_q - loc_p) / scale_p
    return 0.5 * (torch.expm1(v) - v + diff * diff).sum(-1)


def kl_diagonal_normal(p: DiagonalNormal, q: DiagonalNormal) -> torch.Tensor:
    """KL(p ‖ q) in closed form (:func:`kl_diagonal_normals` of their parameters)."""
    return kl_diagonal_normals(p.loc, p.scale, q.loc, q.scale)
