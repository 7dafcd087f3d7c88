"""Mutual-information estimators on cases with a known answer, and the kNN estimator vs sklearn in 1-D."""

import math

import pytest
import torch

from probssl.evaluation.information import (
    NATS_PER_BIT,
    label_entropy,
    mi_classifier_lower_bound,
    mi_knn_ksg,
    mutual_information,
)


def _clusters(n, k, d=8, sep=20.0, seed=0):
    """Balanced labels with one tight, far-apart cluster per class: Y is a function of Z, I = H(Y) = log k."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.eye(k, d) * sep if k <= d else torch.randn(k, d, generator=g) * sep
    y = torch.arange(n) % k
    return centers[y] + torch.randn(n, d, generator=g), y


def test_label_entropy():
    assert label_entropy(torch.arange(400) % 4) == pytest.approx(math.log(4))
    assert label_entropy(torch.zeros(10, dtype=torch.long)) == 0.0


def test_deterministic_labels_give_log_k():
    k = 4
    (train_x, train_y), (test_x, test_y) = _clusters(2000, k), _clusters(2000, k, seed=1)
    bound = mi_classifier_lower_bound(train_x, train_y, test_x, test_y)
    assert bound["nats"] <= math.log(k) + 1e-9
    assert bound["nats"] == pytest.approx(math.log(k), abs=0.02)
    assert bound["bits"] == pytest.approx(2.0, abs=0.03)  # log2(4)
    # psi(N) - psi(N / k) for well-separated clusters (m_i = k_i exactly)
    assert mi_knn_ksg(test_x, test_y) == pytest.approx(math.log(k), abs=0.01)


def test_independent_labels_give_zero():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(4000, 4, generator=g), torch.randint(0, 5, (4000,), generator=g)
    bound = mi_classifier_lower_bound(x[:2000], y[:2000], x[2000:], y[2000:])
    assert abs(bound["nats"]) < 0.02
    assert abs(mi_knn_ksg(x, y)) < 0.05  # sampling sd ~0.015 at N = 4000


def test_knn_estimator_matches_sklearn_in_one_dimension():
    sklearn_mi = pytest.importorskip("sklearn.feature_selection._mutual_info")
    g = torch.Generator().manual_seed(3)
    y = torch.randint(0, 3, (1500,), generator=g)
    z = 0.7 * y.double() + torch.randn(1500, generator=g, dtype=torch.float64)
    for k in (3, 7):
        ref = sklearn_mi._compute_mi_cd(z.numpy(), y.numpy(), k)
        assert mi_knn_ksg(z, y, k=k, standardize_features=False) == pytest.approx(ref, abs=1e-9)


def test_knn_estimator_gaussian_mixture_known_value_and_subsampling():
    """Z | Y=y ~ N(+-mu, 1) in 1-D with P(Y)=1/2: I(Z; Y) by numerical integration."""
    mu = 1.0
    grid = torch.linspace(-12, 12, 200001, dtype=torch.float64)
    p1 = torch.exp(-0.5 * (grid - mu) ** 2) / math.sqrt(2 * math.pi)
    p0 = torch.exp(-0.5 * (grid + mu) ** 2) / math.sqrt(2 * math.pi)
    mix = 0.5 * (p0 + p1)
    truth = float(torch.trapezoid(0.5 * p1 * torch.log(p1 / mix) + 0.5 * p0 * torch.log(p0 / mix), grid))
    g = torch.Generator().manual_seed(4)
    y = torch.randint(0, 2, (8000,), generator=g)
    z = (2 * y.double() - 1) * mu + torch.randn(8000, generator=g, dtype=torch.float64)
    assert mi_knn_ksg(z, y, k=5) == pytest.approx(truth, abs=0.02)
    assert mi_knn_ksg(z, y, k=5, max_samples=3000) == pytest.approx(truth, abs=0.04)


def test_mutual_information_reports_both_units_and_methods():
    (train_x, train_y), (test_x, test_y) = _clusters(1000, 2), _clusters(1000, 2, seed=1)
    report = mutual_information(train_x, train_y, test_x, test_y)
    for entry in report.values():
        assert entry["bits"] == pytest.approx(entry["nats"] / NATS_PER_BIT) and entry["method"]
    assert report["knn_ross"]["bits"] == pytest.approx(1.0, abs=0.02)
