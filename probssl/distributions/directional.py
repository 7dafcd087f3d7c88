"""What the sphere families parameterised by a mean direction and a concentration share (vMF, Power Spherical):
their parameters and shapes, ``expand``, the deterministic summaries and the two uncertainty scores."""

from __future__ import annotations

import torch
from torch.distributions import constraints

from .base import Posterior, uncertainty_score
from .uniform_sphere import sphere

__all__ = ["DirectionalPosterior"]


class DirectionalPosterior(Posterior):
    """A distribution on S^{d-1} with mean direction ``loc`` [..., d] (unit) and concentration κ > 0 [...].

    Shapes: batch_shape = broadcast(loc.shape[:-1], κ.shape), event_shape = (d,). Subclasses implement
    ``expected_cosine() -> E[μᵀz]`` [batch_shape] (plus sampling and densities); ``mean`` = μ E[μᵀz], ``mode`` =
    ``mean_direction`` = μ. Scores: ``expected_cosine_distance`` = 1 - E[μᵀz] (default: bounded in (0, 1),
    comparable across d) and ``concentration_inverse`` = 1/κ (unbounded; its scale depends on d).
    """

    arg_constraints = {"loc": sphere, "concentration": constraints.positive}
    support = sphere
    has_rsample = True
    default_uncertainty = "expected_cosine_distance"

    def __init__(self, loc: torch.Tensor, concentration, validate_args: bool | None = None):
        loc = torch.as_tensor(loc)
        if not loc.is_floating_point():
            loc = loc.to(torch.get_default_dtype())
        if loc.dim() < 1 or loc.shape[-1] < 2:
            raise ValueError(f"loc must have shape [..., d] with d >= 2, got {tuple(loc.shape)}")
        kappa = torch.as_tensor(concentration, dtype=loc.dtype, device=loc.device)
        batch_shape = torch.broadcast_shapes(loc.shape[:-1], kappa.shape)
        self.loc = loc.expand(batch_shape + loc.shape[-1:])
        self.concentration = kappa.expand(batch_shape)
        super().__init__(batch_shape, loc.shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(type(self), _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc = self.loc.expand(batch_shape + self.event_shape)
        new.concentration = self.concentration.expand(batch_shape)
        Posterior.__init__(new, batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def dim(self) -> int:
        """Ambient dimension d (the sphere is S^{d-1})."""
        return self.event_shape[0]

    def expected_cosine(self) -> torch.Tensor:
        """E[μᵀz], shape batch_shape."""
        raise NotImplementedError

    @property
    def mean(self) -> torch.Tensor:
        return self.loc * self.expected_cosine().unsqueeze(-1)

    @property
    def mode(self) -> torch.Tensor:
        return self.loc

    @property
    def mean_direction(self) -> torch.Tensor:
        """μ, shape batch_shape + (d,) (the mode and the direction of E[z])."""
        return self.loc

    @uncertainty_score("1 - E[cos(z, mu)]: expected cosine distance to the mean direction, in (0, 1)")
    def expected_cosine_distance(self) -> torch.Tensor:
        return 1.0 - self.expected_cosine()

    @uncertainty_score("1/kappa: inverse concentration (unbounded; its scale depends on d)")
    def concentration_inverse(self) -> torch.Tensor:
        return self.concentration.reciprocal()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim}, batch_shape={tuple(self.batch_shape)})"
