"""Uniform distribution on the unit hypersphere S^{d-1} ⊂ ℝ^d, and the sphere constraint."""

from __future__ import annotations

import torch
from torch.distributions import constraints

from .base import Posterior, uncertainty_score
from .special import log_sphere_area

__all__ = ["HypersphericalUniform", "sphere"]


class _Sphere(constraints.Constraint):
    """Vectors of unit Euclidean norm (event_dim = 1).

    The tolerance scales with the dtype (1000·eps, at least 1e-6) so float32 vectors that were
    normalised in float32 pass.
    """

    is_discrete = False
    event_dim = 1

    def check(self, value: torch.Tensor) -> torch.Tensor:
        eps = torch.finfo(value.dtype).eps if value.is_floating_point() else 1e-6
        tol = max(1e-6, 1000.0 * eps)
        return (torch.linalg.vector_norm(value, dim=-1) - 1.0).abs() <= tol

    def __repr__(self) -> str:
        return "sphere()"


#: Constraint object for unit vectors (support of ProjectedNormal and HypersphericalUniform).
sphere = _Sphere()


class HypersphericalUniform(Posterior):
    """Uniform distribution on S^{dim-1} = {z ∈ ℝ^dim : ‖z‖ = 1}.

    Density w.r.t. the surface measure: p(z) = 1/A, with A = |S^{dim-1}| = 2π^{dim/2}/Γ(dim/2).

    Shapes: batch_shape = ``batch_shape`` (default ()), event_shape = (dim,).

    * ``rsample``: ε/‖ε‖ with ε ~ N(0, I) (rotation invariance of the standard normal).
      Parameter-free, so "reparameterised" trivially.
    * ``log_prob(z)`` = -log A (exact), shape broadcast(z.shape[:-1], batch_shape).
    * ``entropy()`` = log A (exact).
    * ``mean`` = 0 (exact).
    * ``uncertainty()`` = +inf: the uniform is the m → 0 limit of a projected normal, whose
      score sqrt(mean σ²)/‖m‖ diverges there.
    """

    arg_constraints: dict = {}
    support = sphere
    has_rsample = True
    default_uncertainty = "maximal"

    def __init__(
        self,
        dim: int,
        batch_shape: torch.Size | tuple = torch.Size(),
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        validate_args: bool | None = None,
    ):
        if int(dim) != dim or dim < 2:
            raise ValueError(f"dim must be an integer >= 2 (S^{{dim-1}}), got {dim}")
        self.dim = int(dim)
        self._device = torch.device("cpu") if device is None else torch.device(device)
        self._dtype = torch.get_default_dtype() if dtype is None else dtype
        self._log_area = log_sphere_area(self.dim)
        super().__init__(torch.Size(batch_shape), torch.Size((self.dim,)), validate_args=validate_args)

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def log_area(self) -> float:
        """log |S^{dim-1}| (Python float)."""
        return self._log_area

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(HypersphericalUniform, _instance)
        new.dim = self.dim
        new._device = self._device
        new._dtype = self._dtype
        new._log_area = self._log_area
        super(HypersphericalUniform, new).__init__(torch.Size(batch_shape), self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def rsample(self, sample_shape: torch.Size | tuple = torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        eps = torch.randn(shape, dtype=self._dtype, device=self._device)
        # ‖ε‖ = 0 has probability 0; the clamp only guards against a literal zero draw.
        return eps / torch.linalg.vector_norm(eps, dim=-1, keepdim=True).clamp_min(torch.finfo(self._dtype).tiny)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        shape = torch.broadcast_shapes(value.shape[:-1], self.batch_shape)
        dtype = torch.promote_types(value.dtype, self._dtype) if value.is_floating_point() else self._dtype
        return torch.full(shape, -self._log_area, dtype=dtype, device=value.device)

    def entropy(self) -> torch.Tensor:
        return torch.full(self.batch_shape, self._log_area, dtype=self._dtype, device=self._device)

    @property
    def mean(self) -> torch.Tensor:
        return torch.zeros(self.batch_shape + self.event_shape, dtype=self._dtype, device=self._device)

    @property
    def mode(self) -> torch.Tensor:
        raise NotImplementedError("the uniform distribution on the sphere has no unique mode")

    @uncertainty_score("+inf: the uniform distribution is maximally uncertain")
    def maximal(self) -> torch.Tensor:
        """+inf per batch element (maximal; the projected normal's score diverges as m → 0)."""
        return torch.full(self.batch_shape, float("inf"), dtype=self._dtype, device=self._device)

    def __repr__(self) -> str:
        return f"HypersphericalUniform(dim={self.dim}, batch_shape={tuple(self.batch_shape)})"
