"""Real MNIST and Fashion-MNIST from the shared copy ($PROBSSL_DATA); skipped when unset."""

import time
from pathlib import Path

import pytest
import torch

from probssl.data import load_dataset
from probssl.data.idx import read_idx_images


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_real_idx_datasets(shared_data_dir, name):
    s = load_dataset(name, shared_data_dir, val_fraction=0.1, download=False)
    assert s.name == name and s.image_shape == (1, 28, 28) and s.num_classes == 10
    assert len(s.train) == 54000 and len(s.val) == 6000 and len(s.test) == 10000
    for ds in (s.train, s.val, s.test):
        assert ds.images.dtype == torch.uint8 and ds.images.shape[1:] == (1, 28, 28)
        assert ds.labels.dtype == torch.int64
    # Official class balance of the test sets (published counts).
    expected = {
        "mnist": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
        "fashion-mnist": [1000] * 10,
    }[name]
    assert s.test.labels.bincount().tolist() == expected
    # Stratified: each class loses 10% of its training images to validation (+-1).
    full = torch.cat([s.train.labels, s.val.labels]).bincount()
    assert torch.all((s.val.labels.bincount() - 0.1 * full).abs() <= 1)
    # Real images use the full 0..255 range; MNIST digits are centred, so corners are black.
    assert int(s.train.images.max()) == 255 and int(s.train.images.min()) == 0
    if name == "mnist":
        assert int(s.test.images[:, 0, 0, 0].max()) == 0


def test_real_data_via_environment(shared_data_dir, monkeypatch):
    monkeypatch.setenv("PROBSSL_DATA", shared_data_dir)
    s = load_dataset("mnist", download=False, train_subset=500)
    assert len(s.train) == 500 and len(s.test) == 10000
    # Stratified subset: class proportions of the (unbalanced) MNIST training set, +-1 image.
    full = load_dataset("mnist", download=False)
    share = torch.cat([full.train.labels, full.val.labels]).bincount() / 60000
    assert torch.all((s.train.labels.bincount() - 500 * share).abs() <= 1)


def test_real_idx_decoding_is_fast(shared_data_dir):
    start = time.perf_counter()
    images = read_idx_images(Path(shared_data_dir) / "fashion-mnist" / "train-images-idx3-ubyte.gz")
    elapsed = time.perf_counter() - start
    assert images.shape == (60000, 28, 28)
    # Typically ~0.3 s; generous bound because CI cores are shared.
    assert elapsed < 2.0
