"""Geometry of a representation: covariance spectrum and effective rank (dimensional collapse)."""

from __future__ import annotations

import torch
from torch import Tensor


def covariance_spectrum(z: Tensor) -> Tensor:
    """Eigenvalues of the covariance of z [N, D], descending, [D] (float64, >= 0)."""
    z = z.double()
    z = z - z.mean(0)
    cov = z.T @ z / max(len(z) - 1, 1)
    return torch.linalg.eigvalsh(cov).flip(0).clamp_min(0)


def effective_rank(z: Tensor) -> float:
    """Roy & Vetterli (2007) effective rank of the covariance of z [N, D]: exp(entropy of p),
    p = eigenvalues / their sum. Equals D for an isotropic Gaussian (large N) and 1 for data on a line.
    """
    eig = covariance_spectrum(z)
    p = eig / eig.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))
