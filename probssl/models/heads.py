"""Heads put on top of backbone features ``[N, in_dim]``.

* :class:`ProjectionHead` -- SimCLR-style MLP ``(Linear-BN-ReLU) x (L-1) + Linear``.
* :class:`GaussianHead` -- same trunk, outputs a diagonal Gaussian ``(loc, scale)``.
* :class:`SphericalHead` -- same trunk, outputs a unit direction and a concentration ``(direction, kappa)``
  (von Mises-Fisher / Power Spherical posteriors).
* :class:`BernoulliHead` -- logits of independent Bernoulli bits.
* :class:`LinearHead` -- a linear layer (linear probes, classifiers).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "mlp_trunk",
    "ProjectionHead",
    "GaussianHead",
    "GaussianParams",
    "SphericalHead",
    "SphericalParams",
    "BernoulliHead",
    "LinearHead",
]


def mlp_trunk(in_dim: int, hidden_dim: int, num_layers: int, batch_norm: bool) -> tuple[nn.Sequential, int]:
    """``num_layers - 1`` blocks of ``Linear-BN-ReLU`` (or ``Linear-ReLU``); returns (trunk, out_dim).

    The hidden Linear layers have no bias when followed by BatchNorm (it would be cancelled).
    """
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    layers: list[nn.Module] = []
    prev = in_dim
    for _ in range(num_layers - 1):
        layers.append(nn.Linear(prev, hidden_dim, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden_dim))
        layers.append(nn.ReLU(inplace=True))
        prev = hidden_dim
    return nn.Sequential(*layers), prev


class ProjectionHead(nn.Module):
    """SimCLR projection MLP: ``(Linear-BN-ReLU) x (num_layers - 1) + Linear`` -> ``[N, out_dim]``.

    ``num_layers=1`` is a single Linear (``hidden_dim`` unused).
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 2, batch_norm: bool = True):
        super().__init__()
        self.trunk, prev = mlp_trunk(in_dim, hidden_dim, num_layers, batch_norm)
        self.out = nn.Linear(prev, out_dim)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.trunk(x))


class GaussianParams(NamedTuple):
    """Mean and standard deviation of a diagonal Gaussian, each ``[N, d]``."""

    loc: Tensor
    scale: Tensor


def _inv_softplus(y: float) -> float:
    """``x`` with ``softplus(x) = y`` (``y > 0``)."""
    return y + math.log(-math.expm1(-y))


class GaussianHead(nn.Module):
    """Diagonal-Gaussian head: trunk as :class:`ProjectionHead`, final ``Linear -> 2 * out_dim``.

    Returns :class:`GaussianParams` ``(loc, scale)`` (a NamedTuple, so ``loc, scale = head(h)``
    works) with ``scale = softplus(raw) + min_scale``.  ``scale >= min_scale > 0`` holds for any
    pre-activation, including ``-inf``-like ones where ``softplus`` underflows to 0.

    Initialisation: the scale half of the final layer gets bias ``softplus^{-1}(init_scale -
    min_scale)`` and weights shrunk by ``scale_init_gain`` (0.1), so every initial scale is
    ~``init_scale`` (default 0.5; within about +-10%) whatever the input.  Why 0.5: the usual
    ``log_var = 0`` VAE init gives scale 1, the N(0, I) prior's, and at init the loc outputs have
    std ~0.4, so unit sampling noise would swamp the signal of a contrastive / reconstruction
    objective; a tiny scale (<< 0.1) makes ``log scale`` terms of KL / entropy steep and sits
    where softplus is flat (its slope is ``sigmoid(raw)``, ~0.4 at 0.5 but ~0.1 at 0.1).
    0.5 starts half-way, with a useful gradient in both directions.

    Args:
        in_dim, hidden_dim, out_dim, num_layers, batch_norm: as :class:`ProjectionHead`.
        min_scale: floor added to the softplus (> 0).
        init_scale: initial scale (must exceed ``min_scale``).
    """

    scale_init_gain = 0.1

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        out_dim: int,
        num_layers: int = 2,
        batch_norm: bool = True,
        min_scale: float = 1e-4,
        init_scale: float = 0.5,
    ):
        super().__init__()
        if not min_scale > 0:
            raise ValueError(f"min_scale must be > 0 (it is what keeps scale > 0), got {min_scale}")
        if init_scale <= min_scale:
            raise ValueError(f"init_scale ({init_scale}) must exceed min_scale ({min_scale})")
        self.trunk, prev = mlp_trunk(in_dim, hidden_dim, num_layers, batch_norm)
        self.out = nn.Linear(prev, 2 * out_dim)
        self.in_dim, self.out_dim = in_dim, out_dim
        self.min_scale, self.init_scale = float(min_scale), float(init_scale)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        self.out.reset_parameters()
        d = self.out_dim
        self.out.weight[d:].mul_(self.scale_init_gain)
        self.out.bias[d:].fill_(_inv_softplus(self.init_scale - self.min_scale))

    def forward(self, x: Tensor) -> GaussianParams:
        raw = self.out(self.trunk(x))
        loc, raw_scale = raw.split(self.out_dim, dim=-1)
        return GaussianParams(loc.contiguous(), F.softplus(raw_scale) + self.min_scale)


class SphericalParams(NamedTuple):
    """Mean direction ``[N, d]`` (unit norm) and concentration ``[N]`` (> 0) of a sphere posterior."""

    direction: Tensor
    kappa: Tensor


class SphericalHead(nn.Module):
    """Head of a sphere posterior (vMF, Power Spherical): trunk as :class:`ProjectionHead`, final
    ``Linear -> out_dim + 1``.

    Returns :class:`SphericalParams` ``(direction [N, d], kappa [N])`` with ``direction`` the first ``d``
    outputs normalised to unit length and ``kappa = min_kappa + c * softplus(raw)``, ``c = (init_kappa -
    min_kappa) / log 2``.  ``kappa >= min_kappa > 0`` for any pre-activation.

    Why this parameterisation: kappa lives on a ratio scale (1 vs 10 vs 100 differ as much as 10 vs 100 vs
    1000), and ``dkappa/draw = c * sigmoid(raw)`` makes an optimiser step change kappa by a fixed *fraction*
    near the initial value instead of by a fixed amount (a plain ``softplus(raw)`` started at kappa = 64 would
    need thousands of Adam steps of size ~lr to move kappa by tens). For raw << 0 kappa decays to the floor,
    for raw >> 0 it grows linearly; no exp, so no overflow.

    Initialisation: the kappa row of the final layer gets bias 0 (kappa = ``init_kappa`` exactly) and
    weights shrunk by ``kappa_init_gain`` (0.1), so every initial kappa is ~``init_kappa`` (within ~10%)
    whatever the input. Default ``init_kappa``: ``out_dim`` -- "moderate": at kappa = d, E[cos(z, mu)] is ~0.62
    for a vMF and ~0.5 for a Power Spherical in any d >= 8, so samples are neither point masses nor noise.

    Args:
        in_dim, hidden_dim, out_dim, num_layers, batch_norm: as :class:`ProjectionHead` (out_dim = d >= 2).
        min_kappa: floor of kappa (> 0; keeps the posterior proper and the samplers' special functions in
            their accurate range kappa >= 1e-3).
        init_kappa: initial kappa (> min_kappa); None: ``out_dim``.
    """

    kappa_init_gain = 0.1

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        out_dim: int,
        num_layers: int = 2,
        batch_norm: bool = True,
        min_kappa: float = 1e-2,
        init_kappa: float | None = None,
    ):
        super().__init__()
        init_kappa = float(out_dim if init_kappa is None else init_kappa)
        if out_dim < 2:
            raise ValueError(f"out_dim must be >= 2 (a sphere S^(d-1) needs d >= 2), got {out_dim}")
        if not min_kappa > 0:
            raise ValueError(f"min_kappa must be > 0 (it is what keeps kappa > 0), got {min_kappa}")
        if init_kappa <= min_kappa:
            raise ValueError(f"init_kappa ({init_kappa}) must exceed min_kappa ({min_kappa})")
        self.trunk, prev = mlp_trunk(in_dim, hidden_dim, num_layers, batch_norm)
        self.out = nn.Linear(prev, out_dim + 1)
        self.in_dim, self.out_dim = in_dim, out_dim
        self.min_kappa, self.init_kappa = float(min_kappa), init_kappa
        self.kappa_scale = (init_kappa - self.min_kappa) / math.log(2.0)  # softplus(0) = log 2
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        self.out.reset_parameters()
        self.out.weight[-1].mul_(self.kappa_init_gain)
        self.out.bias[-1].zero_()

    def forward(self, x: Tensor) -> SphericalParams:
        """[N, in_dim] -> (direction [N, out_dim], kappa [N])."""
        raw = self.out(self.trunk(x))
        direction = F.normalize(raw[..., : self.out_dim], dim=-1)
        kappa = self.min_kappa + self.kappa_scale * F.softplus(raw[..., self.out_dim])
        return SphericalParams(direction, kappa)


class BernoulliHead(nn.Module):
    """Logits ``[N, out_bits]`` of independent Bernoulli variables.

    ``hidden_dim=None``: one Linear; otherwise ``Linear-ReLU-Linear``.
    """

    def __init__(self, in_dim: int, out_bits: int, hidden_dim: int | None = None):
        super().__init__()
        if hidden_dim is None:
            self.net: nn.Module = nn.Linear(in_dim, out_bits)
        else:
            self.net = nn.Sequential(
                nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_bits)
            )
        self.in_dim, self.out_bits = in_dim, out_bits

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class LinearHead(nn.Module):
    """``Linear(in_dim, out_dim)``, optionally preceded by a non-affine ``BatchNorm1d``
    (the MAE-style linear probe, which makes the probe insensitive to feature scale)."""

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True, batch_norm: bool = False):
        super().__init__()
        self.norm: nn.Module = nn.BatchNorm1d(in_dim, affine=False) if batch_norm else nn.Identity()
        self.linear = nn.Linear(in_dim, out_dim, bias=bias)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.norm(x))
