"""Clustering metrics: Hungarian matching against brute force, GMM on separable blobs."""

import itertools

import numpy as np
import pytest
import torch

from probssl.evaluation.clustering import clustering_accuracy, clustering_scores, gmm_cluster


def test_permuted_perfect_clustering_has_accuracy_one():
    y = torch.arange(300) % 5
    relabel = torch.tensor([3, 0, 4, 1, 2])
    assert clustering_accuracy(y, relabel[y]) == 1.0


def test_hungarian_equals_brute_force_over_permutations():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y_true = rng.integers(0, 3, 60)
        y_pred = np.where(rng.random(60) < 0.5, y_true, rng.integers(0, 3, 60))
        brute = max(np.mean(np.array(perm)[y_pred] == y_true) for perm in itertools.permutations(range(3)))
        assert clustering_accuracy(y_true, y_pred) == pytest.approx(brute, abs=1e-12)


def test_more_clusters_than_classes_leaves_surplus_unmatched():
    y_true = np.array([0, 0, 1, 1])
    assert clustering_accuracy(y_true, np.array([0, 1, 2, 2])) == 0.75


def test_gmm_on_separated_blobs_is_perfect():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(1500) % 5
    centers = torch.randn(5, 64, generator=g) * 10  # 64-D: exercises the PCA step (pca_dim=32)
    x = centers[y] + torch.randn(1500, 64, generator=g)
    labels = gmm_cluster(x, 5, seed=0)
    assert labels.shape == (1500,) and labels.dtype == torch.int64
    scores = clustering_scores(x, y, seed=0)
    assert scores["acc"] == pytest.approx(1.0) and scores["nmi"] == pytest.approx(1.0)
    assert scores["ari"] == pytest.approx(1.0)


def test_clustering_noise_scores_near_zero():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(2000, 8, generator=g), torch.randint(0, 4, (2000,), generator=g)
    s = clustering_scores(x, y, seed=0)
    assert s["nmi"] < 0.02 and abs(s["ari"]) < 0.02 and s["acc"] < 0.35
