"""Deterministic "posterior" of non-probabilistic methods (SimCLR-style encoders)."""

from __future__ import annotations

import torch
from torch.distributions import constraints

from .base import Posterior, uncertainty_score

__all__ = ["PointMass"]


class PointMass(Posterior):
    """Dirac mass δ_value on vectors, event_shape (d,).

    Lets deterministic encoders share the code path of probabilistic ones.

    * ``rsample(sample_shape)`` = value expanded to sample_shape + batch_shape + (d,)
      (gradients flow to ``value``); ``sample`` is the same without gradient.
    * ``mean`` = ``mode`` = value, ``variance`` = 0, ``uncertainty()`` = 0 (shape batch_shape).
    * ``log_prob`` and ``entropy`` raise NotImplementedError: a Dirac mass has no density
      w.r.t. Lebesgue measure (it would be +∞ at value and -∞ elsewhere).
    """

    arg_constraints = {"value": constraints.real_vector}
    support = constraints.real_vector
    has_rsample = True
    default_uncertainty = "zero"

    def __init__(self, value: torch.Tensor, validate_args: bool | None = None):
        value = torch.as_tensor(value)
        if not value.is_floating_point():
            value = value.to(torch.get_default_dtype())
        if value.dim() < 1:
            raise ValueError("value must have shape [..., d]")
        self.value = value
        super().__init__(value.shape[:-1], value.shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(PointMass, _instance)
        new.value = self.value.expand(torch.Size(batch_shape) + self.event_shape)
        super(PointMass, new).__init__(torch.Size(batch_shape), self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def mean(self) -> torch.Tensor:
        return self.value

    @property
    def mode(self) -> torch.Tensor:
        return self.value

    @property
    def variance(self) -> torch.Tensor:
        return torch.zeros_like(self.value)

    def rsample(self, sample_shape: torch.Size | tuple = torch.Size()) -> torch.Tensor:
        return self.value.expand(self._extended_shape(torch.Size(sample_shape)))

    def sample(self, sample_shape: torch.Size | tuple = torch.Size()) -> torch.Tensor:
        return self.rsample(sample_shape).detach()

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(
            "PointMass has no density w.r.t. Lebesgue measure (a Dirac mass); log_prob is undefined. "
            "Deterministic methods should not use likelihood- or entropy-based terms."
        )

    def entropy(self) -> torch.Tensor:
        raise NotImplementedError("PointMass has no differential entropy (it would be -inf); entropy is undefined.")

    @uncertainty_score("0 for every input: a deterministic embedding carries no uncertainty")
    def zero(self) -> torch.Tensor:
        """Zeros of shape batch_shape: a deterministic embedding carries no uncertainty."""
        return torch.zeros(self.batch_shape, dtype=self.value.dtype, device=self.value.device)
