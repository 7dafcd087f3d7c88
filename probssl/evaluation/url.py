"""Retrieval metrics of the URL benchmark (Kirchhof et al., NeurIPS 2023 Datasets & Benchmarks,
"URL: A Representation Learning Benchmark for Transferable Uncertainty Estimates").

URL judges an embedding and its per-input uncertainty without a classifier head:

* **R@1** (recall at 1): the share of inputs whose nearest other input in cosine similarity has the same
  label (leave-one-out 1-NN retrieval over the whole evaluation set).
* **R-AUROC**: the AUROC of ``-uncertainty`` for predicting that this 1-NN retrieval is correct (URL's
  ``auroc(-uncertainties, correctness)`` in ``validate.py``), i.e. the probability that a failed retrieval is
  more uncertain than a successful one, ties counted 1/2. 1 = the uncertainty flags exactly the failures,
  0.5 = uninformative, 0 = inverted.

Differences from the reference code, both deliberate: the query itself is excluded by index rather than by
dropping the top hit (``topk(2)[1][:, 1]`` there), so exact duplicates of a point still count as its neighbours;
and ties in similarity go to the lowest index (``argmax`` returns the first maximum), so results do not depend
on a search library's tie order. Similarities are computed in float32 chunks of ``chunk`` queries, so memory is
O(chunk x N) rather than N x N (about 245 MB for chunk = 1024, N = 60,000).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from probssl.evaluation.uncertainty import auroc

__all__ = ["nearest_neighbor_correct", "r_auroc", "recall_at_1", "retrieval_uncertainty"]


def _check(features: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    features = torch.as_tensor(features).detach().cpu()
    labels = torch.as_tensor(labels).detach().cpu().reshape(-1)
    if features.ndim != 2:
        raise ValueError(f"features must be [N, D], got shape {tuple(features.shape)}")
    if len(features) != len(labels):
        raise ValueError(f"features and labels differ in length: {len(features)} vs {len(labels)}")
    if len(features) < 2:
        raise ValueError("leave-one-out retrieval needs at least two inputs")
    return features, labels


def nearest_neighbor_correct(features: Tensor, labels: Tensor, chunk: int = 1024) -> Tensor:
    """Whether each input's leave-one-out cosine nearest neighbour has the same label.

    Shapes: features [N, D], labels [N] -> [N] bool. The neighbour of i is argmax_{j != i} cos(x_i, x_j),
    ties to the lowest j. Zero vectors have similarity 0 to everything. Processed ``chunk`` queries at a time.
    """
    features, labels = _check(features, labels)
    normed = F.normalize(features.float(), dim=1)
    n = len(normed)
    neighbour = torch.empty(n, dtype=torch.long)
    # One similarity buffer reused for every chunk (a fresh one per chunk costs about as much as the matmul).
    buffer = torch.empty(min(chunk, n), n)
    for start in range(0, n, chunk):
        queries = normed[start : start + chunk]
        sim = torch.mm(queries, normed.T, out=buffer[: len(queries)])
        rows = torch.arange(len(queries))
        sim[rows, rows + start] = -float("inf")  # leave one out: never retrieve the query itself
        neighbour[start : start + len(queries)] = sim.argmax(dim=1)
    return labels[neighbour] == labels


def recall_at_1(features: Tensor, labels: Tensor, chunk: int = 1024) -> float:
    """URL's R@1: share of inputs whose leave-one-out cosine 1-NN has the same label, in [0, 1].

    Shapes: features [N, D], labels [N].
    """
    return float(nearest_neighbor_correct(features, labels, chunk).double().mean())


def _r_auroc_from_correct(uncertainty, correct: Tensor) -> float:
    u = torch.as_tensor(uncertainty).detach().cpu().reshape(-1).double()
    if len(u) != len(correct):
        raise ValueError(f"uncertainty and features differ in length: {len(u)} vs {len(correct)}")
    # AUROC(score = -u, positive = correct) = P(u_wrong > u_correct) + P(tie) / 2.
    return auroc(u[~correct], u[correct])


def r_auroc(features: Tensor, labels: Tensor, uncertainty: Tensor, chunk: int = 1024) -> float:
    """URL's R-AUROC: AUROC of -uncertainty for "the leave-one-out cosine 1-NN has the same label".

    Shapes: features [N, D], labels [N], uncertainty [N] (higher = more uncertain). Ties in the uncertainty
    count 1/2. nan if every retrieval succeeds or every retrieval fails.
    """
    return _r_auroc_from_correct(uncertainty, nearest_neighbor_correct(features, labels, chunk))


def retrieval_uncertainty(features: Tensor, labels: Tensor, uncertainty: Tensor, chunk: int = 1024) -> dict:
    """Both URL retrieval metrics from one nearest-neighbour search: {"R@1": float, "R-AUROC": float}.

    Shapes: features [N, D], labels [N], uncertainty [N] (higher = more uncertain).
    """
    correct = nearest_neighbor_correct(features, labels, chunk)
    return {"R@1": float(correct.double().mean()), "R-AUROC": _r_auroc_from_correct(uncertainty, correct)}
