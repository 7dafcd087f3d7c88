"""Gaussian density (Mahalanobis) scores against sklearn / scipy references."""

import numpy as np
import pytest
import torch
from scipy.spatial.distance import mahalanobis
from sklearn.covariance import LedoitWolf, ledoit_wolf_shrinkage

from probssl.evaluation.density import GaussianDensityScore


def data(n=300, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    means = rng.normal(0, 4, (k, d))
    mix = rng.normal(0, 1, (d, d))  # correlated, anisotropic noise
    x = means[labels] + rng.normal(0, 1, (n, d)) @ mix
    return x, labels


def test_label_free_matches_sklearn_ledoit_wolf():
    x, _ = data()
    q = np.random.default_rng(1).normal(0, 5, (40, 6))
    model = GaussianDensityScore().fit(torch.from_numpy(x))
    ref = LedoitWolf().fit(x)
    assert model.shrinkage_ == pytest.approx(ledoit_wolf_shrinkage(x - x.mean(0), assume_centered=True), abs=1e-12)
    assert np.allclose(model.covariance.numpy(), ref.covariance_, atol=1e-10)
    assert np.allclose(model.score(torch.from_numpy(q)).numpy(), ref.mahalanobis(q), rtol=1e-9)


def test_tied_class_conditional_matches_scipy():
    x, y = data()
    q = np.random.default_rng(2).normal(0, 5, (25, 6))
    for shrinkage in (0.0, 0.2, None):
        model = GaussianDensityScore(shrinkage=shrinkage, chunk=7).fit(torch.from_numpy(x), torch.from_numpy(y))
        means = np.stack([x[y == c].mean(0) for c in range(3)])
        resid = x - means[y]
        emp = resid.T @ resid / len(x)
        a = ledoit_wolf_shrinkage(resid, assume_centered=True) if shrinkage is None else shrinkage
        cov = (1 - a) * emp + a * np.trace(emp) / 6 * np.eye(6)
        vi = np.linalg.inv(cov)
        expected = [min(mahalanobis(p, m, vi) ** 2 for m in means) for p in q]
        assert model.shrinkage_ == pytest.approx(a, abs=1e-12)
        assert np.allclose(model.score(torch.from_numpy(q)).numpy(), expected, rtol=1e-9)
        # a training point's score is its distance to the nearest mean, never negative
        assert bool((model.score(torch.from_numpy(x[:5])) >= 0).all())


def test_far_points_score_higher_and_labels_any_values():
    x, y = data(seed=3)
    model = GaussianDensityScore().fit(torch.from_numpy(x).float(), torch.from_numpy(y * 10 + 7))  # labels 7, 17, 27
    near = torch.from_numpy(x[:50])
    far = near + 100.0
    assert bool(model.score(far).min() > model.score(near).max())


def test_rescaling_invariance():
    x, y = data(seed=4)
    q = np.random.default_rng(5).normal(0, 3, (30, 6))
    base = GaussianDensityScore().fit(torch.from_numpy(x), torch.from_numpy(y)).score(torch.from_numpy(q))
    scaled = (
        GaussianDensityScore().fit(torch.from_numpy(x * 37.5), torch.from_numpy(y)).score(torch.from_numpy(q * 37.5))
    )
    assert torch.allclose(base, scaled, rtol=1e-9)
    fixed = GaussianDensityScore(0.1).fit(torch.from_numpy(x * 1e-3), torch.from_numpy(y))
    ref = GaussianDensityScore(0.1).fit(torch.from_numpy(x), torch.from_numpy(y)).score(torch.from_numpy(q))
    assert torch.allclose(fixed.score(torch.from_numpy(q * 1e-3)), ref, rtol=1e-9)


def test_more_dimensions_than_points():
    rng = np.random.default_rng(6)
    x = torch.from_numpy(rng.normal(0, 1, (20, 50)))
    model = GaussianDensityScore().fit(x, torch.arange(20) % 2)
    assert 0 < model.shrinkage_ <= 1
    s = model.score(torch.from_numpy(rng.normal(0, 1, (10, 50))))
    assert s.shape == (10,) and bool(torch.isfinite(s).all())
    assert bool(model.score(x * 10).min() > s.max())
    with pytest.raises(ValueError, match="singular"):
        GaussianDensityScore(shrinkage=0.0).fit(x, torch.arange(20) % 2)
    with pytest.raises(RuntimeError):
        GaussianDensityScore().score(x)
