"""Contrastive losses on unit-norm embeddings: NT-Xent (SimCLR) and SupCon (L_out form).

Both are written as a cross-entropy over similarity logits with the self-similarity masked out,
so they stay stable in low precision (log-softmax instead of exp/sum/log by hand).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _similarity_logits(z: Tensor, temperature: float) -> Tensor:
    """[M, d] unit vectors -> [M, M] cosine logits / temperature with the diagonal masked out."""
    if z.dtype in (torch.float16, torch.bfloat16):
        z = z.float()  # logits / tau overflow half precision for small tau
    logits = (z @ z.T) / temperature
    # -inf on the diagonal removes the anchor from its own softmax denominator.
    return logits.masked_fill(torch.eye(z.shape[0], dtype=torch.bool, device=z.device), float("-inf"))


def nt_xent(z1: Tensor, z2: Tensor, temperature: float = 0.5) -> Tensor:
    """SimCLR's normalised-temperature cross-entropy over 2N views.

    Args:
        z1, z2: [N, d] unit-norm embeddings of the two views; row i of each is the same image.
        temperature: tau > 0.
    Returns:
        scalar: mean over the 2N anchors of -log softmax(positive), each anchor having one
        positive (its other view) and 2N - 2 negatives.
    """
    n = z1.shape[0]
    z = torch.cat([z1, z2], dim=0)
    logits = _similarity_logits(z, temperature)
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, targets)


def supcon(z: Tensor, labels: Tensor, temperature: float = 0.1) -> Tensor:
    """Supervised contrastive loss, L_out form (Khosla et al. 2020, eq. 2).

    For anchor i with positives P(i) = {p != i : y_p = y_i}:
        l_i = -1/|P(i)| * sum_{p in P(i)} log( exp(z_i.z_p/tau) / sum_{a != i} exp(z_i.z_a/tau) )
    Anchors without any positive are left out of the mean.

    Args:
        z: [M, d] unit-norm embeddings (all views stacked).
        labels: [M] integer labels (class ids; instance ids reproduce multi-view NT-Xent).
    Returns:
        scalar loss.
    """
    logits = _similarity_logits(z, temperature)
    log_prob = F.log_softmax(logits, dim=1)
    eye = torch.eye(z.shape[0], dtype=torch.bool, device=z.device)
    positives = (labels[:, None] == labels[None, :]) & ~eye
    counts = positives.sum(1)
    has_positive = counts > 0
    # where() rather than multiply: the masked diagonal is -inf and -inf * 0 is nan.
    summed = torch.where(positives, log_prob, torch.zeros_like(log_prob)).sum(1)
    per_anchor = -summed[has_positive] / counts[has_positive]
    return per_anchor.mean()


def info_nce(views: Tensor, temperature: float = 0.5) -> Tensor:
    """Instance-discrimination loss for V >= 2 views.

    Args:
        views: [V, N, d] unit-norm embeddings; views[:, i] are views of image i.
    Returns:
        scalar: NT-Xent for V = 2; for V > 2 the multi-positive L_out form (every other view of
        the same image is a positive), which equals NT-Xent when V = 2.
    """
    v, n, _ = views.shape
    if v == 2:
        return nt_xent(views[0], views[1], temperature)
    instance = torch.arange(n, device=views.device).repeat(v)
    return supcon(views.reshape(v * n, -1), instance, temperature)
