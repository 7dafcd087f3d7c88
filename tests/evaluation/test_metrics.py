import pytest
import torch

from probssl.evaluation import covariance_spectrum, effective_rank, knn_predict, knn_probe, linear_probe


def test_effective_rank_isotropic_gaussian_is_full():
    z = torch.randn(20000, 16, dtype=torch.float64)
    assert effective_rank(z) == pytest.approx(16, rel=0.01)


def test_effective_rank_of_a_line_is_one_and_of_k_equal_directions_is_k():
    t = torch.randn(1000, 1)
    assert effective_rank(t * torch.randn(1, 8)) == pytest.approx(1.0, abs=1e-6)
    z = torch.zeros(4000, 10)
    z[:, :3] = torch.randn(4000, 3)
    assert effective_rank(z) == pytest.approx(3.0, rel=0.03)


def test_spectrum_matches_known_variances():
    z = torch.randn(50000, 3, dtype=torch.float64) * torch.tensor([3.0, 2.0, 1.0])
    assert torch.allclose(covariance_spectrum(z), torch.tensor([9.0, 4.0, 1.0], dtype=torch.float64), rtol=0.03)


def _blobs(n, d=5, sep=6.0, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    centers = torch.randn(classes, d, generator=g) * sep
    return centers[y] + torch.randn(n, d, generator=g), y


def test_linear_probe_separable_is_perfect_and_chance_on_noise():
    (xt, yt), (xv, yv), (xs, ys) = _blobs(300), _blobs(90, seed=1), _blobs(90, seed=2)
    # the same class centres for all splits: regenerate with the train seed's centres
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(3, 5, generator=g) * 6.0
    xv, xs = centers[yv] + torch.randn(90, 5), centers[ys] + torch.randn(90, 5)
    assert linear_probe(xt, yt, xv, yv, xs, ys).test_acc == 1.0
    noise = linear_probe(torch.randn(300, 5), yt, torch.randn(90, 5), yv, torch.randn(3000, 5), torch.arange(3000) % 3)
    assert noise.test_acc < 0.4


def test_linear_probe_selects_on_validation_not_test():
    (xt, yt) = _blobs(200)
    res = linear_probe(xt, yt, xt[:50], yt[:50], xt[:50], 1 - yt[:50].clamp(max=1), weight_decays=(0.0, 1.0))
    assert res.selected["weight_decay"] in (0.0, 1.0)
    assert set(res.val_scores) == {0.0, 1.0}


def test_knn_exact_neighbours():
    train = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    y = torch.tensor([0, 1, 2])
    query = torch.tensor([[0.9, 0.1], [0.1, 0.9], [-1.0, 0.2]])
    assert knn_predict(train, y, query, k=1, num_classes=3).tolist() == [0, 1, 2]
    res = knn_probe(train, y, query, y, query, y, ks=(1, 3))
    assert res.selected["k"] == 1 and res.test_acc == 1.0
