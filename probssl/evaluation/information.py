"""Mutual information I(Z; Y) between a continuous representation Z and the discrete class label Y.

Two estimators with different failure modes, so that agreement means something:

* :func:`mi_classifier_lower_bound` -- variational (Barber & Agakov 2003) lower bound from a linear
  probabilistic classifier: I(Z; Y) >= H(Y) - CE(q). It measures LINEARLY decodable information and is
  reliable in high dimension; it can never exceed H(Y) <= log K.
* :func:`mi_knn_ksg` -- the nearest-neighbour estimator for discrete-continuous pairs (Ross 2014; the
  discrete-continuous analogue of Kraskov-Stoegbauer-Grassberger). Non-parametric, so it sees non-linear
  structure, but it is biased (usually downwards) when D is large relative to log N.

Both are in nats; :func:`mutual_information` reports both in nats and bits with the method named.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from probssl.evaluation.probes import fit_logistic_regression, standardize

__all__ = ["NATS_PER_BIT", "label_entropy", "mi_classifier_lower_bound", "mi_knn_ksg", "mutual_information"]

NATS_PER_BIT = math.log(2.0)


def label_entropy(labels: Tensor) -> float:
    """Plug-in entropy (nats) of the empirical distribution of int ``labels`` [N]."""
    p = torch.bincount(torch.as_tensor(labels).reshape(-1)).double()
    p = p[p > 0] / p.sum()
    return float(-(p * p.log()).sum())


def mi_classifier_lower_bound(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    weight_decays=(1e-3, 1e-4, 1e-5),
    val_fraction: float = 0.1,
    max_train_samples: int | None = 20_000,
    seed: int = 0,
    max_iter: int = 100,
) -> dict:
    """Barber-Agakov variational lower bound on I(Z; Y) from a multinomial logistic regression.

    For any classifier q(y | z):  I(Z; Y) = H(Y) - H(Y | Z) >= H(Y) - E[-log q(Y | Z)].
    Estimate = H_test(Y) - CE_test(q) = mean_i [log q(y_i | z_i) - log p_test(y_i)], where p_test is the
    empirical label distribution of the held-out set on which the cross-entropy is measured (so the
    estimate is <= H_test(Y) <= log K by construction). q is fitted on standardised train features; its
    weight decay is the one with the lowest cross-entropy on a random ``val_fraction`` of the training
    rows (fitted strongest-regularisation first, each fit warm-starting the next). It is a lower bound up to
    estimation error: the held-out mean has sampling noise ~ std(log q) / sqrt(N_test), and a better
    (e.g. non-linear) classifier can only raise it.

    ``max_train_samples``: the classifier is fitted on at most this many random training rows (after the
    validation rows are set aside). A D x K linear model (1,290 parameters for 128 x 10) is pinned down by
    20,000 rows; the cap makes the L-BFGS fits ~3x cheaper on 54,000 rows. ``None`` uses every row.

    Shapes: *_x [N, D] float, *_y [N] int64.
    Returns {"nats", "bits", "entropy_y_nats", "cross_entropy_nats", "weight_decay", "method"}.
    """
    train_y, test_y = train_y.long(), test_y.long()
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    perm = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(seed))
    num_val = max(1, int(round(val_fraction * len(train_x))))
    val_rows, fit_rows = perm[:num_val], perm[num_val:]
    if max_train_samples is not None:
        fit_rows = fit_rows[:max_train_samples]
    fit_x, val_x, test_x = standardize(train_x[fit_rows].double(), train_x[val_rows].double(), test_x.double())
    fit_y, val_y = train_y[fit_rows], train_y[val_rows]
    best, params = None, None
    for wd in sorted(weight_decays, reverse=True):
        params = fit_logistic_regression(fit_x, fit_y, num_classes, wd, init=params, max_iter=max_iter)
        val_ce = F.cross_entropy(val_x @ params[0] + params[1], val_y).item()
        if best is None or val_ce < best[1]:
            best = (wd, val_ce, params)
    wd, _, (w, b) = best
    cross_entropy = F.cross_entropy(test_x @ w + b, test_y).item()
    entropy = label_entropy(test_y)
    nats = entropy - cross_entropy
    return {
        "nats": nats,
        "bits": nats / NATS_PER_BIT,
        "entropy_y_nats": entropy,
        "cross_entropy_nats": cross_entropy,
        "weight_decay": wd,
        "method": "Barber-Agakov lower bound H(Y) - CE of a linear softmax classifier on held-out data",
    }


def mi_knn_ksg(
    features: Tensor,
    labels: Tensor,
    k: int = 3,
    max_samples: int | None = 10_000,
    seed: int = 0,
    standardize_features: bool = True,
    chunk: int = 1024,
) -> float:
    """Nearest-neighbour estimate of I(Z; Y) in nats for continuous Z [N, D] and discrete Y [N] (Ross 2014).

        I = psi(N) - <psi(N_y)> + <psi(k_i)> - <psi(m_i)>

    For each point i of class y: d_i = distance to its k_i-th nearest neighbour among the other points of
    class y (k_i = min(k, N_y - 1)); m_i = number of points of ANY class closer than d_i, counting i itself
    (so, without ties, the k_i - 1 nearer class-mates, i, and the intruders from other classes).
    Points whose class has a single member are dropped, as in sklearn. This is sklearn's
    ``mutual_info_classif`` estimator (there applied per feature, in 1-D) applied to the whole vector.

    Differences from sklearn, and why:
      * Euclidean distance on the whole vector (sklearn's KD-tree uses the max-norm; in 1-D they agree).
        Euclidean distances of all pairs are one matmul, so the estimator runs as chunked dense torch
        ops: rows sorted by class, for each chunk of one class's rows a [chunk, N] distance block, a top-k
        over the class's own column block for d_i and a comparison count over all columns for m_i.
        float32 for D >= 16, float64 below (see the comment in the code).
      * The raw estimate is returned (sklearn clips negatives to 0): for independent Z, Y it scatters
        around 0 and clipping would bias averages upwards.
      * ``max_samples``: the cost is O(N^2 D), so above this cap a random subset of rows (fixed by ``seed``)
        is used: 10,000 rows (the size of a typical test split) take ~0.5-1 s for D = 128 on 2 cores,
        60,000 rows ~36x that. The estimator's bias depends on N, so compare numbers computed with the
        same cap. ``None`` uses every row.
      * ``standardize_features``: each dimension is scaled to unit variance first (distances would
        otherwise be dominated by the largest-variance dimensions; sklearn scales too).
    """
    z, y = _ksg_inputs(features, labels, max_samples, seed, standardize_features)
    n = len(z)
    if n == 0:
        return float("nan")
    class_size = torch.bincount(y)
    k_i = torch.clamp(class_size[y] - 1, max=k)  # [n]
    # Sort by class so that each class's candidates are one contiguous column block.
    y, order = torch.sort(y, stable=True)
    z, k_i = z[order], k_i[order]
    m_i = _ksg_neighbour_counts(z, class_size, k_i, chunk)
    digamma = torch.special.digamma
    estimate = (
        digamma(torch.tensor(float(n), dtype=torch.float64))
        - digamma(class_size[y].double()).mean()
        + digamma(k_i.double()).mean()
        - digamma(m_i).mean()
    )
    return float(estimate)


def _ksg_inputs(features, labels, max_samples, seed, standardize_features) -> tuple[Tensor, Tensor]:
    """Subsampled, single-member classes dropped, standardised (or centred) features [n, D] and labels [n]."""
    z = torch.as_tensor(features).detach().cpu()
    y = torch.as_tensor(labels).detach().cpu().reshape(-1).long()
    if z.ndim == 1:
        z = z[:, None]
    if len(z) != len(y):
        raise ValueError(f"features and labels differ in length: {len(z)} vs {len(y)}")
    if max_samples is not None and len(z) > max_samples:
        rows = torch.randperm(len(z), generator=torch.Generator().manual_seed(seed))[:max_samples]
        z, y = z[rows], y[rows]
    keep = torch.bincount(y)[y] > 1
    z, y = z[keep].double(), y[keep]
    if len(z) == 0:
        return z, y
    z = standardize(z)[0] if standardize_features else z - z.mean(0)  # centring reduces cancellation below
    # float32 halves the cost, but |a - b|^2 = |a|^2 + |b|^2 - 2 a.b loses ~1e-7 * |a|^2 to cancellation,
    # which swamps neighbour distances in low dimension (they shrink like N^(-1/D)): use float64 there.
    return (z.float() if z.shape[1] >= 16 else z), y


def _ksg_neighbour_counts(z: Tensor, class_size: Tensor, k_i: Tensor, chunk: int) -> Tensor:
    """m_i [n] float64 for class-sorted rows z [n, D]: points of any class strictly closer than the k_i-th
    class-mate, i itself included."""
    n = len(z)
    class_end = class_size.cumsum(0)
    sq_norm = z.pow(2).sum(1)
    m_i = torch.empty(n, dtype=torch.float64)
    # Buffers reused across chunks: fresh [chunk, n] allocations cost as much as the arithmetic.
    partial_buf = torch.empty(min(chunk, n), n, dtype=z.dtype)
    closer_buf = torch.empty(min(chunk, n), n, dtype=torch.bool)
    for c in torch.nonzero(class_size > 0).flatten().tolist():
        lo, hi = int(class_end[c] - class_size[c]), int(class_end[c])
        for start in range(lo, hi, chunk):
            rows = slice(start, min(start + chunk, hi))
            size = rows.stop - rows.start
            # partial[i, j] = |z_j|^2 - 2 z_i.z_j = |z_i - z_j|^2 - |z_i|^2: the same order along a row as the
            # distance. d_i and m_i come from this ONE matrix, so a point at exactly distance d_i (the k-th
            # class-mate itself) can never be counted as closer through a different rounding.
            partial = torch.addmm(sq_norm[None, :], z[rows], z.T, alpha=-2, out=partial_buf[:size])
            # Smallest k_i + 1 values within the class: i itself first (partial_ii = -|z_i|^2 is minimal).
            within = partial[:, lo:hi].topk(int(k_i[rows].max()) + 1, dim=1, largest=False).values
            radius = within.gather(1, k_i[rows, None])  # the k_i-th class-mate, self excluded
            closer = torch.lt(partial, radius, out=closer_buf[:size])  # strictly closer, i itself included
            m_i[rows] = closer.sum(1, dtype=torch.int32).double()
    return m_i


def mutual_information(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    k: int = 3,
    max_samples: int | None = 10_000,
    seed: int = 0,
) -> dict[str, dict]:
    """Both estimates of I(Z; Y) for one representation, each in nats and bits with its method named.

    The classifier bound trains on (train_x, train_y) and is measured on the test split; the kNN estimate
    uses the test split alone (it needs no training, and the test split is the held-out population).
    """
    bound = mi_classifier_lower_bound(train_x, train_y, test_x, test_y, seed=seed)
    knn = mi_knn_ksg(test_x, test_y, k=k, max_samples=max_samples, seed=seed)
    return {
        "classifier_lower_bound": {"nats": bound["nats"], "bits": bound["bits"], "method": bound["method"]},
        "knn_ross": {
            "nats": knn,
            "bits": knn / NATS_PER_BIT,
            "method": f"Ross (2014) kNN estimator, k={k}, Euclidean, standardised features, at most {max_samples} rows",
        },
        "entropy_y": {
            "nats": bound["entropy_y_nats"],
            "bits": bound["entropy_y_nats"] / NATS_PER_BIT,
            "method": "plug-in entropy of the test labels (upper bound on I(Z; Y))",
        },
    }
