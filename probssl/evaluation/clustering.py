"""Unsupervised read-out: do the classes appear as clusters of the representation?

Features are clustered by a Gaussian mixture without looking at labels; the clustering is then scored
against the labels with permutation-invariant metrics (Hungarian-matched accuracy, NMI, ARI).
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.mixture import GaussianMixture
from torch import Tensor

from probssl.evaluation.probes import standardize

try:  # a dependency of scikit-learn, so present wherever sklearn is
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None

__all__ = ["clustering_accuracy", "clustering_scores", "gmm_cluster"]


def _labels_numpy(y, name: str) -> np.ndarray:
    y = np.asarray(torch.as_tensor(y).detach().cpu()).reshape(-1)
    if y.size and (y.min() < 0 or not np.issubdtype(y.dtype, np.integer)):
        raise ValueError(f"{name} must be non-negative integers")
    return y.astype(np.int64)


def gmm_cluster(
    features: Tensor,
    num_clusters: int,
    seed: int = 0,
    covariance_type: str = "diag",
    pca_dim: int | None = 32,
    max_fit_samples: int | None = 20_000,
    max_iter: int = 100,
) -> Tensor:
    """Cluster features with a Gaussian mixture fitted by EM (sklearn ``GaussianMixture``, k-means init).

    Pre-processing, all fitted on the data themselves (no labels):
      1. standardise every dimension (the same scaling the linear probe sees, so no single large-variance
         dimension dominates the likelihood);
      2. if D > ``pca_dim``, project onto the top ``pca_dim`` principal components (not whitened): EM in
         128-D is slow and its covariance estimates are noisy, while class structure of good representations
         lives in the leading components;
      3. fit on a random subset of at most ``max_fit_samples`` rows (EM cost is linear in N; 20k points pin
         down 10 clusters' means and variances well), then assign every row to its most likely component.
    sklearn runs single-threaded here (see the comment in the code).

    Args:
        features: [N, D] float.
        covariance_type: "diag" (default: fast and stable) or "full" (also "tied", "spherical").
        pca_dim / max_fit_samples: ``None`` disables that step.
    Returns:
        [N] int64 cluster indices in [0, num_clusters).
    """
    x = standardize(features.detach().cpu().double())[0]
    if pca_dim is not None and x.shape[1] > pca_dim:
        cov = x.T @ x / max(len(x) - 1, 1)  # x is centred by standardize
        _, vectors = torch.linalg.eigh(cov)  # ascending eigenvalues
        x = x @ vectors[:, -pca_dim:].flip(1)
    x = x.numpy()
    rng = np.random.default_rng(seed)
    fit_rows = (
        rng.choice(len(x), max_fit_samples, replace=False)
        if max_fit_samples is not None and len(x) > max_fit_samples
        else slice(None)
    )
    gmm = GaussianMixture(
        num_clusters, covariance_type=covariance_type, max_iter=max_iter, random_state=seed, reg_covar=1e-4
    )
    # Single-threaded BLAS / OpenMP inside sklearn: EM on 20,000 x 32 is small (~0.4 s on one core), and
    # OpenBLAS threads competing with torch's still-spinning OpenMP workers made it ~10x SLOWER on 2 cores.
    with threadpool_limits(limits=1) if threadpool_limits is not None else nullcontext():
        gmm.fit(x[fit_rows])
        labels = gmm.predict(x)
    return torch.from_numpy(labels).long()


def clustering_accuracy(y_true, y_pred) -> float:
    """Accuracy of the best one-to-one mapping of clusters to classes (Hungarian algorithm).

    Counts the [clusters, classes] co-occurrence matrix and finds the assignment maximising the matched
    total with ``scipy.optimize.linear_sum_assignment``. With more clusters than classes the surplus
    clusters stay unmatched (and count as errors). Shapes: y_true [N], y_pred [N], non-negative ints.
    """
    y_true, y_pred = _labels_numpy(y_true, "y_true"), _labels_numpy(y_pred, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y_true.size} vs {y_pred.size}")
    if y_true.size == 0:
        return float("nan")
    num_true, num_pred = y_true.max() + 1, y_pred.max() + 1
    counts = np.bincount(y_pred * num_true + y_true, minlength=num_pred * num_true).reshape(num_pred, num_true)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / y_true.size)


def clustering_scores(
    features: Tensor, labels: Tensor, num_clusters: int | None = None, seed: int = 0, **gmm_kwargs
) -> dict[str, float]:
    """GMM-cluster ``features`` [N, D] and score against ``labels`` [N].

    ``num_clusters`` defaults to the number of classes. Extra keyword arguments go to :func:`gmm_cluster`.
    Returns {"acc" (Hungarian-matched), "nmi" (normalised mutual information, arithmetic mean),
    "ari" (adjusted Rand index)}; all equal 1 for a perfect clustering up to relabelling.
    """
    y = _labels_numpy(labels, "labels")
    num_clusters = int(y.max()) + 1 if num_clusters is None else num_clusters
    pred = gmm_cluster(features, num_clusters, seed, **gmm_kwargs).numpy()
    return {
        "acc": clustering_accuracy(y, pred),
        "nmi": float(normalized_mutual_info_score(y, pred)),
        "ari": float(adjusted_rand_score(y, pred)),
    }
