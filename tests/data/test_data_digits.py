"""Digits (real, bundled with scikit-learn): shapes, scaling, stratified deterministic splits."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from probssl.data import DataError, DataSplits, ImageDataset, load_dataset
from probssl.data.splits import seeded_rng, stratified_counts, stratified_split


def _rows(ds: ImageDataset) -> set[bytes]:
    return {row.numpy().tobytes() + bytes([int(y)]) for row, y in zip(ds.images, ds.labels)}


def test_shapes_dtypes_and_classes():
    s = load_dataset("digits")
    assert isinstance(s, DataSplits)
    assert s.name == "digits" and s.num_classes == 10 and s.image_shape == (1, 8, 8)
    assert s.train.classes == tuple(str(d) for d in range(10))
    for ds in (s.train, s.val, s.test):
        assert ds.images.dtype == torch.uint8 and ds.images.is_contiguous()
        assert ds.labels.dtype == torch.int64 and ds.labels.shape == (len(ds),)
        assert ds.images.shape[1:] == (1, 8, 8)
        assert set(ds.labels.tolist()) == set(range(10))
    # Fixed 20% test split of 1797; 10% of the remaining 1438 for validation.
    assert len(s.test) == 359
    assert len(s.val) == 144
    assert len(s.train) == 1797 - 359 - 144


def test_pixel_scaling_matches_sklearn():
    bunch = load_digits()
    s = load_dataset("digits", val_fraction=0.0)
    assert len(s.val) == 0 and len(s.train) + len(s.test) == 1797
    expected = np.rint(bunch.data * 255 / 16).astype(np.uint8)
    assert int(s.train.images.max()) == 255 and int(s.train.images.min()) == 0
    # Every train/test image is a (scaled) sklearn image with its sklearn label.
    table = {row.tobytes(): int(y) for row, y in zip(expected, bunch.target)}
    for ds in (s.train, s.test):
        for img, y in zip(ds.images.reshape(len(ds), 64).numpy(), ds.labels.tolist()):
            assert table[img.tobytes()] == y


def test_splits_are_disjoint_and_cover_everything():
    s = load_dataset("digits", val_fraction=0.25, split_seed=3)
    n = len(s.train) + len(s.val) + len(s.test)
    assert n == 1797
    bunch = load_digits()
    all_images = torch.from_numpy(np.rint(bunch.data * 255 / 16).astype(np.uint8))
    # Match images back to their sklearn index (digits has a few exact duplicates, so compare
    # multisets of rows rather than sets).
    joined = torch.cat([s.train.images, s.val.images, s.test.images]).reshape(n, 64)
    assert sorted(map(bytes, joined.numpy())) == sorted(map(bytes, all_images.numpy()))


def test_stratified_proportions():
    s = load_dataset("digits", val_fraction=0.2, split_seed=1)
    full_counts = np.bincount(load_digits().target, minlength=10)
    for ds, frac_of_full in ((s.test, 0.2), (s.val, 0.8 * 0.2)):
        counts = ds.labels.bincount(minlength=10).numpy()
        # Largest-remainder allocation: within one image of the exact proportion per class.
        assert np.all(np.abs(counts - full_counts * frac_of_full) <= 1.5)


def test_determinism_and_seed_dependence():
    a = load_dataset("digits", split_seed=7)
    from probssl.data import registry

    registry.clear_cache()
    b = load_dataset("digits", split_seed=7)
    assert a is not b
    assert torch.equal(a.val.images, b.val.images) and torch.equal(a.val.labels, b.val.labels)
    assert torch.equal(a.train.images, b.train.images)
    c = load_dataset("digits", split_seed=8)
    assert not torch.equal(a.val.images, c.val.images)
    # The test split never depends on split_seed.
    assert torch.equal(a.test.images, c.test.images) and torch.equal(a.test.labels, c.test.labels)
    assert _rows(a.train) | _rows(a.val) == _rows(c.train) | _rows(c.val)


def test_cache_returns_same_object():
    assert load_dataset("digits", split_seed=11) is load_dataset("digits", split_seed=11)
    assert load_dataset("DIGITS", split_seed=11) is load_dataset("digits", split_seed=11)


def test_train_subset_is_stratified_seeded_and_leaves_val_alone():
    full = load_dataset("digits", split_seed=2)
    sub = load_dataset("digits", split_seed=2, train_subset=100)
    assert len(sub.train) == 100
    assert sub.train.labels.bincount(minlength=10).tolist() == [10] * 10
    assert torch.equal(sub.val.images, full.val.images)
    assert torch.equal(sub.test.images, full.test.images)
    assert _rows(sub.train) <= _rows(full.train)
    again = load_dataset("digits", split_seed=2, train_subset=100)
    assert torch.equal(again.train.images, sub.train.images)
    # A cap: more than the 1294 available keeps the whole training split.
    capped = load_dataset("digits", split_seed=2, train_subset=5000)
    assert torch.equal(capped.train.images, full.train.images)


@pytest.mark.parametrize(
    "kwargs, text",
    [
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"val_fraction": -0.1}, "val_fraction"),
        ({"split_seed": -1}, "split_seed"),
        ({"train_subset": 0}, "train_subset"),
    ],
)
def test_invalid_options(kwargs, text):
    with pytest.raises(DataError, match=text):
        load_dataset("digits", **kwargs)


def test_stratified_counts_exact_total():
    sizes = np.array([7, 3, 0, 11, 1])
    for n_take in range(sizes.sum() + 1):
        counts = stratified_counts(sizes, n_take)
        assert counts.sum() == n_take
        assert np.all(counts <= sizes) and np.all(counts >= 0)
        assert np.all(np.abs(counts - sizes * n_take / sizes.sum()) < 1)


def test_stratified_split_partition():
    labels = torch.tensor([0, 1, 1, 2, 2, 2, 0, 1, 2, 2] * 5)
    rest, taken = stratified_split(labels, 13, seeded_rng(0, 0))
    assert len(taken) == 13 and len(rest) == 37
    assert torch.equal(torch.sort(torch.cat([rest, taken])).values, torch.arange(50))
    assert torch.all(taken[1:] > taken[:-1])  # sorted, hence no duplicates
    rest2, taken2 = stratified_split(labels, 13, seeded_rng(0, 0))
    assert torch.equal(taken, taken2)


def test_image_dataset_validation_and_subset():
    images = torch.arange(4 * 3 * 2 * 2, dtype=torch.uint8).reshape(4, 3, 2, 2)
    ds = ImageDataset(images, torch.tensor([0, 1, 1, 0]), ["a", "b"], "toy")
    assert ds.classes == ("a", "b") and len(ds) == 4 and ds.image_shape == (3, 2, 2)
    sub = ds.subset(torch.tensor([2, 0]))
    assert torch.equal(sub.images[0], images[2]) and sub.labels.tolist() == [1, 0]
    sub.images.zero_()
    assert images.sum() > 0  # subset copies, never aliases
    mask = ds.subset(ds.labels == 1)
    assert len(mask) == 2
    img, y = ds[3]
    assert img.shape == (3, 2, 2) and int(y) == 0
    assert "n=4" in repr(ds)
    with pytest.raises(TypeError):
        ImageDataset(images.float(), torch.zeros(4, dtype=torch.int64), ("a",), "x")
    with pytest.raises(TypeError):
        ImageDataset(images, torch.zeros(4, dtype=torch.int32), ("a",), "x")
    with pytest.raises(ValueError):
        ImageDataset(images, torch.zeros(3, dtype=torch.int64), ("a",), "x")
    with pytest.raises(ValueError):
        ImageDataset(images, torch.tensor([0, 1, 2, 0]), ("a", "b"), "x")
    with pytest.raises(ValueError):
        ImageDataset(images.transpose(2, 3), torch.zeros(4, dtype=torch.int64), ("a",), "x")
