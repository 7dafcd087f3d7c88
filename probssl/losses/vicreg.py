"""VICReg: variance-invariance-covariance regularisation (Bardes, Ponce, LeCun 2022).

Written as the official implementation (facebookresearch/vicreg, ``VICReg.forward``):

    invariance = mean_{n,j} (a_nj - b_nj)^2                                   (F.mse_loss)
    variance   = mean_j relu(1 - sqrt(Var_n[a_j] + eps)) / 2 + same for b / 2  (unbiased Var)
    covariance = sum_{i != j} C(a)_ij^2 / D + sum_{i != j} C(b)_ij^2 / D,
                 C(a) = (a - mean a)^T (a - mean a) / (N - 1)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _off_diagonal_square_sum(c: Tensor) -> Tensor:
    """Sum of the squared off-diagonal entries of a square matrix."""
    eye = torch.eye(c.shape[0], dtype=torch.bool, device=c.device)
    return c.masked_fill(eye, 0.0).pow(2).sum()


def vicreg_loss(
    z_a: Tensor, z_b: Tensor, sim: float = 25.0, std: float = 25.0, cov: float = 1.0, eps: float = 1e-4
) -> dict[str, Tensor]:
    """VICReg terms for two branches, already multiplied by their coefficients.

    Args:
        z_a, z_b: [N, D] expander outputs of two views (row i of each is the same image); N >= 2.
        sim, std, cov: the coefficients lambda, mu, nu (paper defaults 25, 25, 1).
        eps: added to the variance before the square root (keeps its gradient finite at 0).
    Returns:
        {"invariance": sim * mse, "variance": std * hinge, "covariance": cov * off-diag}: scalars
        whose sum is the official loss. With sim = std = cov = 1 they are the raw terms.
    """
    if z_a.shape != z_b.shape or z_a.dim() != 2:
        raise ValueError(f"z_a and z_b must both be [N, D], got {tuple(z_a.shape)} and {tuple(z_b.shape)}")
    n, d = z_a.shape
    if n < 2:
        raise ValueError("VICReg needs a batch of N >= 2 to estimate variances")
    z_a, z_b = z_a.float(), z_b.float()  # variances and covariances in low precision are noise
    invariance = F.mse_loss(z_a, z_b)
    a = z_a - z_a.mean(dim=0)
    b = z_b - z_b.mean(dim=0)
    std_a = torch.sqrt(a.var(dim=0) + eps)
    std_b = torch.sqrt(b.var(dim=0) + eps)
    variance = F.relu(1 - std_a).mean() / 2 + F.relu(1 - std_b).mean() / 2
    cov_a = (a.T @ a) / (n - 1)
    cov_b = (b.T @ b) / (n - 1)
    covariance = _off_diagonal_square_sum(cov_a) / d + _off_diagonal_square_sum(cov_b) / d
    return {"invariance": sim * invariance, "variance": std * variance, "covariance": cov * covariance}
