"""Contrastive losses on unit-norm embeddings: NT-Xent (SimCLR) and SupCon (L_out form).

Both are a cross-entropy over similarity logits with the self-similarity masked out, so they stay
stable in low precision (log-softmax, not exp/sum/log by hand). Under data parallelism each rank
scores its own anchors against the gathered embeddings of every rank (``gather=True``), which
makes the loss and gradients equal to a single process seeing the global batch.

``reduction="none"`` returns one loss per anchor instead of their mean (the per-sample losses that a
loss-prediction head learns to predict); the default ``"mean"`` computes exactly what it did before.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from probssl.losses.distributed import all_gather_no_grad, all_gather_with_grad, rank_and_world

#: Valid ``reduction`` values: the batch loss, or one loss per anchor (for per-sample loss prediction).
REDUCTIONS = ("mean", "none")


def _logits_without_self(anchors: Tensor, candidates: Tensor, self_index: Tensor, temperature: float) -> Tensor:
    """[M, d] x [K, d] -> [M, K] cosine logits / tau, with each anchor's own column set to -inf."""
    if anchors.dtype in (torch.float16, torch.bfloat16):
        anchors, candidates = anchors.float(), candidates.float()  # logits / tau overflow half precision
    logits = anchors @ candidates.T / temperature
    return logits.scatter(1, self_index[:, None], float("-inf"))


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")


def nt_xent(z1: Tensor, z2: Tensor, temperature: float = 0.5, gather: bool = True, reduction: str = "mean") -> Tensor:
    """SimCLR's normalised-temperature cross-entropy over 2N views.

    Args:
        z1, z2: [N, d] unit-norm embeddings of the two views; row i of each is the same image.
        temperature: tau > 0.
        gather: under torch.distributed, use all ranks' embeddings as negatives.
        reduction: "mean" (the loss) or "none" (one loss per anchor).
    Returns:
        "mean": scalar, the mean over the local 2N anchors of -log softmax(positive); each anchor has
        one positive (its other view) and 2N_global - 2 negatives. "none": [2N], anchors z1 then z2
        (row i and row N + i are the two views of image i); its mean is the "mean" loss.
    """
    _check_reduction(reduction)
    n = z1.shape[0]
    rank, world = rank_and_world() if gather else (0, 1)
    candidates = torch.cat([all_gather_with_grad(z1), all_gather_with_grad(z2)]) if world > 1 else torch.cat([z1, z2])
    local = torch.arange(n, device=z1.device) + rank * n
    offset = n * world  # where view-2 rows start among the candidates
    self_index = torch.cat([local, local + offset])
    targets = torch.cat([local + offset, local])
    logits = _logits_without_self(torch.cat([z1, z2]), candidates, self_index, temperature)
    return F.cross_entropy(logits, targets, reduction=reduction)


def supcon(z: Tensor, labels: Tensor, temperature: float = 0.1, gather: bool = True, reduction: str = "mean") -> Tensor:
    """Supervised contrastive loss, L_out form (Khosla et al. 2020, eq. 2).

    For anchor i with positives P(i) = {p != i : y_p = y_i}:
        l_i = -1/|P(i)| * sum_{p in P(i)} log( exp(z_i.z_p/tau) / sum_{a != i} exp(z_i.z_a/tau) )
    Anchors without any positive are left out of the mean.

    Args:
        z: [M, d] unit-norm embeddings (all views stacked).
        labels: [M] integer labels (class ids; globally unique instance ids reproduce multi-view NT-Xent).
        gather: under torch.distributed, contrast against all ranks' embeddings and labels.
        reduction: "mean" (the loss) or "none" (one loss per anchor).
    Returns:
        "mean": scalar loss over the local anchors that have a positive. "none": [M], l_i per anchor,
        NaN for an anchor without any positive (its loss is undefined; the "mean" leaves it out).
    """
    _check_reduction(reduction)
    m = z.shape[0]
    rank, world = rank_and_world() if gather else (0, 1)
    candidates = all_gather_with_grad(z) if world > 1 else z
    all_labels = all_gather_no_grad(labels) if world > 1 else labels
    self_index = torch.arange(m, device=z.device) + rank * m
    log_prob = F.log_softmax(_logits_without_self(z, candidates, self_index, temperature), dim=1)
    positives = labels[:, None] == all_labels[None, :]
    positives.scatter_(1, self_index[:, None], False)
    counts = positives.sum(1)
    has_positive = counts > 0
    # where() rather than multiply: the masked self column is -inf and -inf * 0 is nan.
    summed = torch.where(positives, log_prob, torch.zeros_like(log_prob)).sum(1)
    if reduction == "none":
        return torch.where(has_positive, -summed / counts.clamp_min(1), torch.full_like(summed, float("nan")))
    return (-summed[has_positive] / counts[has_positive]).mean()


def info_nce(views: Tensor, temperature: float = 0.5, gather: bool = True, reduction: str = "mean") -> Tensor:
    """Instance-discrimination loss for V >= 2 views.

    Args:
        views: [V, N, d] unit-norm embeddings; views[:, i] are views of image i.
        reduction: "mean" (the loss) or "none" (one loss per anchor, i.e. per view of each image).
    Returns:
        "mean": scalar, NT-Xent for V = 2; for V > 2 the multi-positive L_out form (every other view
        of the same image is a positive), which equals NT-Xent when V = 2. "none": [V, N], entry
        [a, i] the loss of view a of image i as anchor; its mean is the "mean" loss (every anchor has
        V - 1 >= 1 positives), and ``.mean(0)`` is the per-image loss [N].
    """
    _check_reduction(reduction)
    v, n, _ = views.shape
    if v == 2:
        out = nt_xent(views[0], views[1], temperature, gather, reduction)
    else:
        rank, world = rank_and_world() if gather else (0, 1)
        instance = (torch.arange(n, device=views.device) + rank * n).repeat(v)
        out = supcon(views.reshape(v * n, -1), instance, temperature, gather, reduction)
    return out if reduction == "mean" else out.reshape(v, n)  # both losses order anchors view-major
