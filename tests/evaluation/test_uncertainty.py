"""Uncertainty metrics against closed forms and sklearn / scipy oracles."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import rankdata, spearmanr
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from probssl.evaluation.uncertainty import (
    aupr,
    aurc,
    aurc_optimal,
    auroc,
    average_ranks,
    fpr_at_tpr,
    knn_distance_score,
    misclassification_detection,
    ood_detection,
    selective_accuracy_curve,
    spearman,
)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_auroc_separated_reversed_identical():
    pos, neg = torch.arange(10.0, 20.0), torch.arange(0.0, 10.0)
    assert auroc(pos, neg) == 1.0
    assert auroc(neg, pos) == 0.0
    same = torch.randn(20000, generator=gen())
    assert auroc(same[:10000], same[10000:]) == pytest.approx(0.5, abs=0.02)
    assert auroc(torch.ones(5), torch.ones(7)) == 0.5  # all tied: every pair counts 1/2


def test_auroc_and_aupr_match_sklearn_with_ties():
    for seed in range(3):
        g = gen(seed)
        scores = torch.randint(0, 20, (500,), generator=g).double()  # many ties
        labels = torch.rand(500, generator=g) < 0.3
        scores = scores + 3 * labels  # some signal
        ref_auc = roc_auc_score(labels.numpy(), scores.numpy())
        assert auroc(scores[labels], scores[~labels]) == pytest.approx(ref_auc, abs=1e-12)
        assert aupr(scores, labels) == pytest.approx(average_precision_score(labels.numpy(), scores.numpy()), abs=1e-12)
        cont = torch.randn(300, generator=g, dtype=torch.float64)
        lab = torch.rand(300, generator=g) < 0.5
        assert aupr(cont, lab) == pytest.approx(average_precision_score(lab.numpy(), cont.numpy()), abs=1e-12)


def test_fpr_at_tpr_separable_and_vs_roc_curve():
    assert fpr_at_tpr(torch.arange(10.0, 20.0), torch.arange(0.0, 10.0)) == 0.0
    g = gen(1)
    for n_pos in (100, 37, 1000):
        pos = torch.randn(n_pos, generator=g, dtype=torch.float64) + 1
        neg = torch.randn(800, generator=g, dtype=torch.float64)
        labels = np.r_[np.ones(n_pos), np.zeros(800)]
        fpr, tpr, _ = roc_curve(labels, np.r_[pos.numpy(), neg.numpy()], drop_intermediate=False)
        expected = fpr[np.argmax(tpr >= 0.95 - 1e-12)]
        assert fpr_at_tpr(pos, neg, 0.95) == pytest.approx(expected, abs=1e-12)


def test_ood_detection_orientation():
    res = ood_detection(torch.zeros(50), torch.ones(30))
    assert res == {"auroc": 1.0, "aupr": 1.0, "fpr95": 0.0}
    assert ood_detection(torch.ones(50), torch.zeros(30))["auroc"] == 0.0


def test_average_ranks_and_spearman_match_scipy():
    g = gen(2)
    x = torch.randint(0, 10, (200,), generator=g).double()
    y = x + torch.randn(200, generator=g, dtype=torch.float64) * 3
    assert torch.allclose(average_ranks(x), torch.from_numpy(rankdata(x.numpy())))
    assert spearman(x, y) == pytest.approx(spearmanr(x.numpy(), y.numpy()).statistic, abs=1e-12)
    assert spearman(x, x) == pytest.approx(1.0) and spearman(x, -x) == pytest.approx(-1.0)


def _perfect_ranking(n=1000, accuracy=0.7, seed=0):
    g = gen(seed)
    correct = torch.rand(n, generator=g).argsort() < int(accuracy * n)  # exactly 700 correct, shuffled
    uncertainty = torch.where(correct, torch.rand(n, generator=g), 1 + torch.rand(n, generator=g))
    return uncertainty, correct


def test_selective_accuracy_perfect_ranking():
    uncertainty, correct = _perfect_ranking()
    coverage, accuracy = selective_accuracy_curve(uncertainty, correct, num_points=50)
    assert coverage[-1] == 1.0 and accuracy[-1] == pytest.approx(0.7)
    at = torch.nonzero(torch.isclose(coverage, torch.tensor(0.7, dtype=torch.float64))).item()
    assert accuracy[at] == 1.0 and bool((accuracy[: at + 1] == 1).all())
    assert bool((accuracy[at + 1 :] < 1).all())
    assert misclassification_detection(uncertainty, correct)["auroc"] == 1.0


def test_aurc_perfect_ranking_equals_closed_form_minimum():
    uncertainty, correct = _perfect_ranking()
    n, c = 1000, 700
    exact = sum((k - c) / k for k in range(c + 1, n + 1)) / n
    assert aurc(uncertainty, correct) == pytest.approx(exact, abs=1e-12)
    assert aurc_optimal(correct) == pytest.approx(exact, abs=1e-12)
    r = 0.3  # the continuous approximation of Geifman et al.
    assert exact == pytest.approx(r + (1 - r) * math.log(1 - r), abs=2e-3)
    assert misclassification_detection(uncertainty, correct)["eaurc"] == pytest.approx(0.0, abs=1e-12)


def test_aurc_random_and_constant_ranking_give_error_rate():
    _, correct = _perfect_ranking(n=20000)
    random_u = torch.rand(20000, generator=gen(5))
    assert aurc(random_u, correct) == pytest.approx(0.3, abs=0.01)
    # All tied: the expectation over orders is exactly the error rate at every coverage.
    assert aurc(torch.zeros(20000), correct) == pytest.approx(0.3, abs=1e-12)
    _, acc = selective_accuracy_curve(torch.zeros(20000), correct, num_points=10)
    assert torch.allclose(acc, torch.full_like(acc, 0.7))


def test_knn_distance_score_far_points_score_higher():
    g = gen(3)
    train = torch.randn(2000, 16, generator=g) + 3 * torch.ones(16)  # a cluster away from the origin
    near = torch.randn(100, 16, generator=g) + 3 * torch.ones(16)
    far = torch.randn(100, 16, generator=g) - 3 * torch.ones(16)  # the opposite direction
    s_near, s_far = knn_distance_score(train, near, k=10), knn_distance_score(train, far, k=10)
    assert s_near.shape == (100,) and bool(s_far.min() > s_near.max())
    assert ood_detection(s_near, s_far)["auroc"] == 1.0
    # exact value for a tiny case: cosine distances 0 and 1 to the two training points
    assert torch.allclose(
        knn_distance_score(torch.tensor([[1.0, 0], [0, 1.0]]), torch.tensor([[2.0, 0]]), k=2), torch.tensor([0.5])
    )
