"""URL retrieval metrics (R@1, R-AUROC) on hand-built features with known nearest neighbours."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from probssl.evaluation.url import nearest_neighbor_correct, r_auroc, recall_at_1, retrieval_uncertainty


def on_circle(degrees, norms=None):
    rad = torch.tensor(degrees, dtype=torch.float64) * math.pi / 180
    x = torch.stack([rad.cos(), rad.sin()], dim=1)
    return x if norms is None else x * torch.tensor(norms, dtype=torch.float64)[:, None]


# Nearest neighbours by angle: 0<->10, 90<->100, 180<->185; the last pair has different labels.
ANGLES = [0.0, 10.0, 90.0, 100.0, 180.0, 185.0]
LABELS = torch.tensor([0, 0, 1, 1, 2, 0])
CORRECT = [True, True, True, True, False, False]


def test_nearest_neighbor_known_answer_and_cosine_only():
    x = on_circle(ANGLES)
    assert nearest_neighbor_correct(x, LABELS).tolist() == CORRECT
    assert recall_at_1(x, LABELS) == pytest.approx(4 / 6)
    # Cosine similarity ignores the norm: wildly different lengths give the same neighbours.
    scaled = on_circle(ANGLES, norms=[1.0, 100.0, 0.01, 5.0, 3.0, 0.2])
    assert nearest_neighbor_correct(scaled, LABELS).tolist() == CORRECT


def test_leave_one_out_keeps_duplicates_of_the_query():
    # Points 0 and 1 coincide; each is the other's neighbour (not itself), so their labels decide.
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.1, 1.0]])
    assert nearest_neighbor_correct(x, torch.tensor([0, 1, 2, 2])).tolist() == [False, False, True, True]
    assert recall_at_1(x, torch.tensor([5, 5, 2, 2])) == 1.0


def test_chunked_search_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 8, generator=g)
    y = torch.randint(0, 4, (300,), generator=g)
    xn = (x / x.norm(dim=1, keepdim=True)).numpy().astype(np.float64)
    sim = xn @ xn.T
    np.fill_diagonal(sim, -np.inf)
    expected = (y.numpy()[sim.argmax(1)] == y.numpy()).tolist()
    for chunk in (1, 7, 300, 1024):
        assert nearest_neighbor_correct(x, y, chunk=chunk).tolist() == expected


def test_r_auroc_perfect_inverted_constant_and_sklearn():
    x = on_circle(ANGLES)
    wrong = ~torch.tensor(CORRECT)
    assert r_auroc(x, LABELS, wrong.double()) == 1.0  # failures are the most uncertain
    assert r_auroc(x, LABELS, (~wrong).double()) == 0.0
    assert r_auroc(x, LABELS, torch.zeros(6)) == 0.5
    g = torch.Generator().manual_seed(1)
    feats, labels = torch.randn(2000, 4, generator=g), torch.randint(0, 3, (2000,), generator=g)
    u = torch.rand(2000, generator=g)
    correct = nearest_neighbor_correct(feats, labels).numpy()
    assert 0.2 < correct.mean() < 0.6
    assert r_auroc(feats, labels, u) == pytest.approx(roc_auc_score(correct, -u.numpy()), abs=1e-12)
    assert r_auroc(feats, labels, u) == pytest.approx(0.5, abs=0.04)  # random scores


def test_retrieval_uncertainty_keys_and_values():
    x = on_circle(ANGLES)
    u = torch.tensor([0.1, 0.2, 0.3, 0.9, 0.4, 0.8])  # one correct (0.9) above one failure (0.4)
    res = retrieval_uncertainty(x, LABELS, u)
    assert set(res) == {"R@1", "R-AUROC"}
    assert res["R@1"] == pytest.approx(4 / 6)
    # (failure, correct) pairs with the failure more uncertain: 0.8 and 0.4 each beat 0.1, 0.2, 0.3 -> 6 / 8
    assert res["R-AUROC"] == pytest.approx(6 / 8)
    with pytest.raises(ValueError):
        recall_at_1(torch.zeros(1, 3), torch.zeros(1))
