"""Is an uncertainty score useful? Detection metrics, selective prediction and rank correlation.

Convention everywhere: a HIGHER score means MORE uncertain. Detection metrics treat the thing to be
detected (out-of-distribution inputs, misclassified inputs) as the positive class, so a useful
uncertainty gives AUROC > 0.5.

Ties are handled exactly rather than by an arbitrary sort order, because deterministic methods and
quantised scores produce many of them:

* AUROC is the Mann-Whitney U statistic with average ranks (a tie counts 1/2), = sklearn's
  ``roc_auc_score``.
* Average precision evaluates precision only at distinct score thresholds, = sklearn's
  ``average_precision_score``.
* Selective accuracy / AURC use the expected value under a uniformly random order within a tie group,
  so a constant score gives the accuracy of the whole set at every coverage, not a lucky or unlucky
  ordering by index.

All functions are O(N log N) (one sort), fully vectorised, and accept tensors or array-likes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "aupr",
    "aurc",
    "aurc_optimal",
    "auroc",
    "average_ranks",
    "fpr_at_tpr",
    "knn_distance_score",
    "misclassification_detection",
    "ood_detection",
    "selective_accuracy_curve",
    "spearman",
]


def _as_1d(x, name: str, dtype: torch.dtype = torch.float64) -> Tensor:
    t = torch.as_tensor(x).detach().cpu().reshape(-1).to(dtype)
    if dtype.is_floating_point and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite")
    return t


def average_ranks(x: Tensor) -> Tensor:
    """1-based ranks of x [N] with tied values sharing the mean of their positions, [N] float64.

    = ``scipy.stats.rankdata(x, method="average")``.
    """
    x = _as_1d(x, "x")
    sorted_x, order = torch.sort(x, stable=True)
    _, group, counts = torch.unique_consecutive(sorted_x, return_inverse=True, return_counts=True)
    last = counts.cumsum(0).double()  # 1-based position of each tie group's last member
    group_rank = last - (counts.double() - 1) / 2  # mean of positions last-count+1 .. last
    ranks = torch.empty_like(x)
    ranks[order] = group_rank[group]
    return ranks


def auroc(scores_pos, scores_neg) -> float:
    """Area under the ROC curve = P(score_pos > score_neg) + P(equal) / 2.

    Computed as the Mann-Whitney U statistic / (n_pos * n_neg) with average ranks for ties.
    Shapes: scores_pos [P], scores_neg [M]. Returns nan if either set is empty.
    """
    pos, neg = _as_1d(scores_pos, "scores_pos"), _as_1d(scores_neg, "scores_neg")
    n_pos, n_neg = len(pos), len(neg)
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = average_ranks(torch.cat([pos, neg]))
    u = ranks[:n_pos].sum().item() - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


def aupr(scores, is_positive) -> float:
    """Average precision: sum_t (recall_t - recall_{t-1}) * precision_t over distinct score thresholds t,
    descending (the step-wise area under the precision-recall curve, no interpolation).

    Shapes: scores [N] (higher = more likely positive), is_positive [N] bool. Returns nan without positives.
    """
    s = _as_1d(scores, "scores")
    pos = _as_1d(is_positive, "is_positive", torch.bool)
    if len(s) != len(pos):
        raise ValueError(f"scores and is_positive differ in length: {len(s)} vs {len(pos)}")
    if not bool(pos.any()):
        return float("nan")
    s, order = torch.sort(s, descending=True, stable=True)
    hit = pos[order].double()
    tp, fp = hit.cumsum(0), (1 - hit).cumsum(0)
    # A threshold admits a whole tie group at once: evaluate only at each group's last member.
    group_end = torch.ones(len(s), dtype=torch.bool)
    group_end[:-1] = s[1:] != s[:-1]
    tp, fp = tp[group_end], fp[group_end]
    precision, recall = tp / (tp + fp), tp / tp[-1]
    return float((torch.diff(recall, prepend=recall.new_zeros(1)) * precision).sum())


def fpr_at_tpr(scores_pos, scores_neg, tpr: float = 0.95) -> float:
    """False-positive rate at the highest threshold whose true-positive rate is >= ``tpr``.

    The threshold t is the ceil(tpr * P)-th largest positive score; returns the fraction of negatives with
    score >= t (the point sklearn's ``roc_curve`` gives at the first TPR >= ``tpr``). 0 for separable scores.
    Shapes: scores_pos [P], scores_neg [M].
    """
    pos, neg = _as_1d(scores_pos, "scores_pos"), _as_1d(scores_neg, "scores_neg")
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    if not 0 < tpr <= 1:
        raise ValueError(f"tpr must be in (0, 1], got {tpr}")
    # -1e-9: 0.95 * 100 is 95.00000000000001 in floating point and must not round up to 96.
    needed = max(1, math.ceil(tpr * len(pos) - 1e-9))
    threshold = torch.kthvalue(pos, len(pos) - needed + 1).values
    return float((neg >= threshold).double().mean())


def ood_detection(uncertainty_in, uncertainty_out) -> dict[str, float]:
    """Separate out-of-distribution from in-distribution inputs by thresholding the uncertainty.

    OOD is the positive class and higher uncertainty = more likely OOD.
    Shapes: uncertainty_in [N] (in-distribution test set), uncertainty_out [M] (OOD set).
    Returns {"auroc", "aupr" (average precision, OOD positive), "fpr95" (FPR of ID at 95% TPR of OOD)}.
    """
    u_in, u_out = _as_1d(uncertainty_in, "uncertainty_in"), _as_1d(uncertainty_out, "uncertainty_out")
    is_out = torch.cat([torch.zeros(len(u_in), dtype=torch.bool), torch.ones(len(u_out), dtype=torch.bool)])
    return {
        "auroc": auroc(u_out, u_in),
        "aupr": aupr(torch.cat([u_in, u_out]), is_out),
        "fpr95": fpr_at_tpr(u_out, u_in, 0.95),
    }


def _expected_correct_cumsum(uncertainty, correct) -> Tensor:
    """Expected number of correct predictions among the n most certain inputs, n = 1..N, [N] float64.

    Inputs are ordered by increasing uncertainty; within a group of tied scores the order is taken to be
    uniformly random, so the expectation grows linearly through the group at the group's accuracy.
    """
    u = _as_1d(uncertainty, "uncertainty")
    ok = _as_1d(correct, "correct", torch.bool)
    if len(u) != len(ok):
        raise ValueError(f"uncertainty and correct differ in length: {len(u)} vs {len(ok)}")
    if len(u) == 0:
        raise ValueError("need at least one prediction")
    u, order = torch.sort(u, stable=True)
    ok = ok[order].double()
    _, group, counts = torch.unique_consecutive(u, return_inverse=True, return_counts=True)
    group_correct = torch.zeros(len(counts), dtype=torch.float64).index_add_(0, group, ok)
    starts = counts.cumsum(0) - counts
    correct_before = group_correct.cumsum(0) - group_correct
    position_in_group = torch.arange(len(u)) - starts[group]  # 0-based
    return correct_before[group] + (position_in_group + 1) * group_correct[group] / counts[group]


def selective_accuracy_curve(uncertainty, correct, num_points: int = 50) -> tuple[Tensor, Tensor]:
    """Accuracy on the most certain fraction of inputs, for K = ``num_points`` coverages.

    Coverage k/K keeps the ceil(k N / K) inputs with the lowest uncertainty (k = 1..K; ties: expected value
    under a random order within the tie). Shapes: uncertainty [N], correct [N] bool ->
    (coverage [K] float64, actual kept fraction; accuracy [K] float64). The last point is the full accuracy.
    """
    cum = _expected_correct_cumsum(uncertainty, correct)
    n = len(cum)
    k = torch.arange(1, num_points + 1)
    kept = (k * n + num_points - 1) // num_points  # integer ceil: no floating-point off-by-one
    return kept.double() / n, cum[kept - 1] / kept.double()


def aurc(uncertainty, correct) -> float:
    """Area under the risk-coverage curve (Geifman & El-Yaniv 2017; Geifman et al. 2019).

    Mean over n = 1..N of the error rate among the n most certain inputs (lower is better).
    A score independent of correctness gives ~ the error rate; the best possible ranking gives
    :func:`aurc_optimal`. Shapes: uncertainty [N], correct [N] bool.
    """
    cum = _expected_correct_cumsum(uncertainty, correct)
    kept = torch.arange(1, len(cum) + 1, dtype=torch.float64)
    return float((1 - cum / kept).mean())


def aurc_optimal(correct) -> float:
    """AURC of a perfect ranking (every correct prediction more certain than every error), closed form:

        AURC* = (1/N) sum_{n=C+1}^{N} (n - C) / n = E/N - (C/N) (H_N - H_C),

    C correct and E = N - C errors, H_n the n-th harmonic number (~ r + (1 - r) ln(1 - r) for error rate r).
    """
    ok = _as_1d(correct, "correct", torch.bool)
    n, c = len(ok), int(ok.sum())
    harmonic = torch.special.digamma(torch.tensor([n + 1.0, c + 1.0], dtype=torch.float64))  # H_n = psi(n+1)+gamma
    return (n - c) / n - c / n * float(harmonic[0] - harmonic[1])


def misclassification_detection(uncertainty, correct) -> dict[str, float]:
    """How well the uncertainty flags the classifier's own errors (errors are the positive class).

    Shapes: uncertainty [N], correct [N] bool.
    Returns {"auroc", "aupr" (average precision, errors positive), "fpr95", "aurc", "eaurc" (= aurc -
    aurc_optimal, the part due to the ranking rather than to the error rate), "error_rate"}.
    AUROC / AUPR / FPR95 are nan if there are no errors (or no correct predictions).
    """
    u = _as_1d(uncertainty, "uncertainty")
    ok = _as_1d(correct, "correct", torch.bool)
    risk = aurc(u, ok)
    return {
        "auroc": auroc(u[~ok], u[ok]),
        "aupr": aupr(u, ~ok),
        "fpr95": fpr_at_tpr(u[~ok], u[ok], 0.95),
        "aurc": risk,
        "eaurc": risk - aurc_optimal(ok),
        "error_rate": float((~ok).double().mean()),
    }


def knn_distance_score(train_x: Tensor, query_x: Tensor, k: int = 10, chunk: int = 1024) -> Tensor:
    """Mean cosine distance (1 - cos) from each query to its k nearest training features.

    An uncertainty score that every method has, probabilistic or not (Sun et al. 2022 use the k-th distance
    for OOD detection). Queries should be disjoint from ``train_x`` (a training point is its own neighbour).
    Shapes: train_x [N, D], query_x [M, D] -> [M] float32 in [0, 2]; processed in chunks of ``chunk`` queries.
    """
    train_n = F.normalize(train_x.detach().float(), dim=1)
    k = min(k, len(train_n))
    out = torch.empty(len(query_x))
    # One [chunk, N] similarity buffer reused for every chunk: allocating a fresh one per chunk costs
    # about as much as the matmul itself (page faults on ~250 MB for N = 60,000).
    buffer = torch.empty(min(chunk, len(query_x)), len(train_n))
    for i in range(0, len(query_x), chunk):
        queries = F.normalize(query_x[i : i + chunk].detach().float(), dim=1)
        sim = torch.mm(queries, train_n.T, out=buffer[: len(queries)])
        out[i : i + chunk] = 1 - sim.topk(k, dim=1).values.mean(1)
    return out


def spearman(x, y) -> float:
    """Spearman rank correlation: Pearson correlation of average ranks (= ``scipy.stats.spearmanr``).

    Shapes: x [N], y [N]. nan if either is constant.
    """
    rx, ry = average_ranks(x), average_ranks(y)
    if len(rx) != len(ry):
        raise ValueError(f"x and y differ in length: {len(rx)} vs {len(ry)}")
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = (rx.norm() * ry.norm()).item()
    return float((rx @ ry).item() / denom) if denom > 0 else float("nan")
