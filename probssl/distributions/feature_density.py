"""An epistemic uncertainty from the density of the training features: Gaussian (Mahalanobis) scores.

With labels, the training features are modelled as class-conditional Gaussians N(mu_c, Sigma) with one
shared ("tied") covariance (Lee et al., NeurIPS 2018, "A Simple Unified Framework for Detecting
Out-of-Distribution Samples and Adversarial Attacks"); the score of x is the squared Mahalanobis distance to
the nearest class mean,

    s(x) = min_c (x - mu_c)^T Sigma^{-1} (x - mu_c),

i.e. minus Lee et al.'s confidence score, so a HIGHER score means MORE uncertain (far from all training
data). Without labels one Gaussian is fitted to all features (the same formula with a single "class").

Sigma is the pooled within-class covariance (1/N) sum_i (x_i - mu_{y_i})(x_i - mu_{y_i})^T, shrunk towards
a multiple of the identity, (1 - a) Sigma + a (tr Sigma / D) I, so that it is invertible for D > N and
well conditioned when N is barely above D. By default a is the Ledoit-Wolf (2004) estimate computed from the
pooled residuals (= ``sklearn.covariance.ledoit_wolf_shrinkage(residuals, assume_centered=True)``); both it
and a fixed a are invariant to rescaling the features, so the score is too.

Everything runs in float64 and in chunks of rows, so memory is O(D^2 + chunk x (D + K)).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["GaussianDensityScore"]


def _rows(x, name: str) -> Tensor:
    t = torch.as_tensor(x).detach().cpu()
    if t.ndim != 2:
        raise ValueError(f"{name} must be [N, D], got shape {tuple(t.shape)}")
    t = t.double()
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite")
    return t


def _class_means(x: Tensor, labels: Tensor | None, chunk: int) -> tuple[Tensor, Tensor]:
    """(means [K, D], class index of each row [N]); K = 1 and all indices 0 without labels."""
    if labels is None:
        index = torch.zeros(len(x), dtype=torch.long)
    else:
        labels = torch.as_tensor(labels).detach().cpu().reshape(-1)
        if len(labels) != len(x):
            raise ValueError(f"train_features and labels differ in length: {len(x)} vs {len(labels)}")
        _, index = torch.unique(labels, return_inverse=True)  # any label values, mapped to 0..K-1
    k = int(index.max()) + 1 if len(index) else 0
    sums = torch.zeros(k, x.shape[1], dtype=torch.float64)
    for i in range(0, len(x), chunk):
        sums.index_add_(0, index[i : i + chunk], x[i : i + chunk])
    counts = torch.bincount(index, minlength=k).double()
    return sums / counts[:, None], index


def _ledoit_wolf(gram: Tensor, gram_sq: Tensor, n: int) -> float:
    """Ledoit-Wolf shrinkage intensity from the residual moments (residuals taken as centred).

    gram = R^T R, gram_sq = (R * R)^T (R * R), both [D, D], R the [N, D] residuals. Same estimator as
    sklearn's ``ledoit_wolf_shrinkage(R, assume_centered=True)``: beta / delta with delta the squared distance
    of the empirical covariance from mu I and beta an estimate of its sampling variance, capped at delta.
    """
    d = gram.shape[0]
    emp = gram / n
    mu = float(torch.diagonal(emp).sum()) / d
    delta = (float((emp**2).sum()) - 2 * mu * float(torch.diagonal(emp).sum()) + d * mu**2) / d
    beta = (float(gram_sq.sum()) / n - float((emp**2).sum())) / (d * n)
    beta = min(beta, delta)
    return 0.0 if beta == 0 else beta / delta


class GaussianDensityScore:
    """Squared Mahalanobis distance to the nearest class mean under a tied, shrunk covariance.

    ``shrinkage``: None = Ledoit-Wolf estimate, or a fixed a in [0, 1]. ``chunk``: rows per batch.
    After :meth:`fit`: ``means`` [K, D], ``covariance`` [D, D], ``shrinkage_`` (the a used), all float64.
    """

    def __init__(self, shrinkage: float | None = None, chunk: int = 4096):
        if shrinkage is not None and not 0 <= shrinkage <= 1:
            raise ValueError(f"shrinkage must be None or in [0, 1], got {shrinkage}")
        self.shrinkage = shrinkage
        self.chunk = chunk

    def fit(self, train_features, labels=None) -> GaussianDensityScore:
        """Fit class means and the shrunk tied covariance. Shapes: train_features [N, D], labels [N] or None."""
        x = _rows(train_features, "train_features")
        if len(x) == 0:
            raise ValueError("need at least one training feature")
        means, index = _class_means(x, labels, self.chunk)
        d = x.shape[1]
        gram = torch.zeros(d, d, dtype=torch.float64)
        gram_sq = torch.zeros(d, d, dtype=torch.float64)
        for i in range(0, len(x), self.chunk):
            r = x[i : i + self.chunk] - means[index[i : i + self.chunk]]
            gram += r.T @ r
            if self.shrinkage is None:
                gram_sq += (r * r).T @ (r * r)
        emp = gram / len(x)
        a = _ledoit_wolf(gram, gram_sq, len(x)) if self.shrinkage is None else float(self.shrinkage)
        target = float(torch.diagonal(emp).mean())
        cov = (1 - a) * emp + a * target * torch.eye(d, dtype=torch.float64)
        chol, info = torch.linalg.cholesky_ex(cov)
        if int(info) != 0:
            raise ValueError(
                f"the shrunk covariance is singular (shrinkage {a:.3g}, mean variance {target:.3g}); the training "
                f"features have (almost) no spread around their class means. Use more training features or a "
                f"larger shrinkage."
            )
        self.means, self.covariance, self.shrinkage_, self._chol = means, cov, a, chol
        # Whitened class means z = L^{-1} mu: the distance is then a plain Euclidean one.
        self._white_means = torch.linalg.solve_triangular(chol, means.T, upper=False).T
        return self

    def score(self, features) -> Tensor:
        """Squared Mahalanobis distance to the nearest class mean. Shapes: features [M, D] -> [M] float64."""
        if not hasattr(self, "_chol"):
            raise RuntimeError("call fit() before score()")
        x = _rows(features, "features")
        if x.shape[1] != self.means.shape[1]:
            raise ValueError(f"features have {x.shape[1]} dimensions, the fitted model {self.means.shape[1]}")
        mu_sq = (self._white_means**2).sum(1)  # [K]
        out = torch.empty(len(x), dtype=torch.float64)
        for i in range(0, len(x), self.chunk):
            z = torch.linalg.solve_triangular(self._chol, x[i : i + self.chunk].T, upper=False).T  # [B, D]
            dist = (z**2).sum(1, keepdim=True) - 2 * z @ self._white_means.T + mu_sq  # [B, K]
            # clamp: rounding can push a distance of ~0 slightly negative
            out[i : i + self.chunk] = dist.min(dim=1).values.clamp_(min=0)
        return out
