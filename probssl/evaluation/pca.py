"""Principal components and bit-budget quantisers for comparing representations at equal size.

Used where a comparison is only fair at one size: style probes of a 128-d SimCLR feature against a 10-d
SimVAE latent (reduce both to d dimensions), or SCL's B-bit binary code against SimCLR's float features
stored in the same B bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["PCA", "fit_pca", "sign_codes", "uniform_codes"]


@dataclass(frozen=True)
class PCA:
    """A fitted projection: ``pca(z)`` maps rows z [N, D] to their first ``dim`` principal coordinates [N, dim].

    mean [D] and components [D, dim] (orthonormal columns, by decreasing variance), float32.
    explained [dim]: the fraction of the fitted rows' total variance along each component.
    """

    mean: Tensor
    components: Tensor
    explained: Tensor

    @property
    def dim(self) -> int:
        return int(self.components.shape[1])

    def __call__(self, z: Tensor) -> Tensor:
        return (z.float().cpu() - self.mean) @ self.components


def fit_pca(z: Tensor, dim: int) -> PCA:
    """The top-``dim`` principal components of rows z [N, D] (1 <= dim <= min(N, D)).

    Fitted in float64 by an SVD of the centred rows (exact, deterministic up to each component's sign, which is
    fixed so that the component's largest-magnitude entry is positive).
    """
    n, d = z.shape
    if not 1 <= dim <= min(n, d):
        raise ValueError(f"PCA to {dim} dimensions needs 1 <= dim <= min(rows, columns) = {min(n, d)}")
    x = z.detach().double().cpu()
    mean = x.mean(0)
    _, s, vh = torch.linalg.svd(x - mean, full_matrices=False)
    components = vh[:dim].T  # [D, dim]
    signs = torch.sign(components.gather(0, components.abs().argmax(0, keepdim=True)))
    components = components * signs
    variance = s.square()
    explained = variance[:dim] / variance.sum().clamp_min(torch.finfo(torch.float64).tiny)
    return PCA(mean.float(), components.float(), explained.float())


def sign_codes(z: Tensor, pca: PCA) -> Tensor:
    """One bit per principal coordinate (its sign; "PCA hashing"): rows z [N, D] -> codes [N, pca.dim] in {-1, +1}."""
    return torch.where(pca(z) >= 0, 1.0, -1.0)


def uniform_codes(z: Tensor, pca: PCA, bits: int, low: Tensor, high: Tensor) -> Tensor:
    """``bits`` bits per principal coordinate: each coordinate clipped to [low, high] (per-coordinate [dim] bounds,
    e.g. the training rows' min and max) and rounded to one of 2**bits evenly spaced levels.

    Returns the dequantised coordinates [N, pca.dim] (what a decoder of the stored integers would recover).
    """
    levels = 2**bits - 1
    span = (high - low).clamp_min(torch.finfo(torch.float32).eps)
    q = torch.round((pca(z).clamp(low, high) - low) / span * levels)
    return low + q / levels * span
