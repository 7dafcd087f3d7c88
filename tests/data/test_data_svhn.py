"""SVHN on small MATLAB v5 files in the official layout (X [32, 32, 3, N] uint8, y [N, 1] with 10 for the digit 0)."""

import hashlib

import numpy as np
import pytest
import scipy.io
import torch

from probssl.data import DataError, load_dataset, svhn
from probssl.data.registry import clear_cache


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


def write_mat(path, rng, n):
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    digits = np.arange(n) % 10
    labels = np.where(digits == 0, 10, digits).astype(np.uint8)  # the official files label the digit 0 as 10
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"X": images.transpose(2, 3, 1, 0), "y": labels[:, None]})  # v5, as the official files
    return images, digits


def make_svhn(root, monkeypatch, extra: bool = False):
    rng = np.random.default_rng(0)
    made = {}
    files = (("svhn/train_32x32.mat", 12), ("svhn/test_32x32.mat", 7), ("svhn/extra_32x32.mat", 9))
    for rel, n in files[: 3 if extra else 2]:
        made[rel] = write_mat(root / rel, rng, n)
        monkeypatch.setitem(svhn.SVHN_MD5, rel, hashlib.md5((root / rel).read_bytes()).hexdigest())
    return made


def test_svhn_reads_the_official_layout(tmp_path, monkeypatch):
    made = make_svhn(tmp_path, monkeypatch)
    splits = load_dataset("svhn", tmp_path, val_fraction=0.0, download=False)
    for split, rel in (("train", "svhn/train_32x32.mat"), ("test", "svhn/test_32x32.mat")):
        images, digits = made[rel]
        data = getattr(splits, split)
        assert torch.equal(data.images, torch.from_numpy(images)) and data.labels.tolist() == digits.tolist()
    assert splits.train.classes == tuple("0123456789") and 0 in splits.train.labels.tolist()
    # X[row, col, channel, n] is pixel (channel, row, col) of image n
    raw = scipy.io.loadmat(tmp_path / "svhn/train_32x32.mat")["X"]
    assert int(splits.train.images[5, 1, 3, 7]) == int(raw[3, 7, 1, 5])


def test_svhn_downloads_from_its_url_with_md5(tmp_path, monkeypatch):
    source = tmp_path / "mirror"
    made = make_svhn(source, monkeypatch)
    monkeypatch.setattr(svhn, "SVHN_URL", (source / "svhn").as_uri() + "/")
    splits = load_dataset("svhn", tmp_path / "data", val_fraction=0.0)
    assert torch.equal(splits.test.images, torch.from_numpy(made["svhn/test_32x32.mat"][0]))
    assert (tmp_path / "data" / "svhn" / "train_32x32.mat").is_file()


def test_svhn_missing_and_wrong_files(tmp_path, monkeypatch):
    with pytest.raises(DataError) as err:
        load_dataset("svhn", tmp_path, download=False)
    assert "train_32x32.mat" in str(err.value) and "e26dedcc434d2e4c54c9b2d4a06d8373" in str(err.value)

    make_svhn(tmp_path, monkeypatch)
    path = tmp_path / "svhn" / "test_32x32.mat"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="corrupt"):
        load_dataset("svhn", tmp_path, download=False)

    # the right MD5 but not an SVHN file: a clear error naming the file, not a traceback
    for content, message in ((b"not a mat file" * 20, "MATLAB"), (None, "uint8 images X")):
        if content is None:
            scipy.io.savemat(path, {"X": np.zeros((4, 4), dtype=np.float32), "y": np.ones((1, 1))})
        else:
            path.write_bytes(content)
        monkeypatch.setitem(svhn.SVHN_MD5, "svhn/test_32x32.mat", hashlib.md5(path.read_bytes()).hexdigest())
        clear_cache()
        with pytest.raises(DataError, match=message) as err:
            load_dataset("svhn", tmp_path, download=False)
        assert str(path) in str(err.value)


def test_svhn_extra_trains_on_train_then_extra(tmp_path, monkeypatch):
    made = make_svhn(tmp_path, monkeypatch, extra=True)
    splits = load_dataset("svhn-extra", tmp_path, val_fraction=0.0, download=False)
    (train_x, train_y), (extra_x, extra_y) = made["svhn/train_32x32.mat"], made["svhn/extra_32x32.mat"]
    assert torch.equal(splits.train.images, torch.from_numpy(np.concatenate([train_x, extra_x])))
    assert splits.train.labels.tolist() == [*train_y.tolist(), *extra_y.tolist()]
    assert torch.equal(splits.test.images, torch.from_numpy(made["svhn/test_32x32.mat"][0]))
    assert splits.train.name == "svhn-extra" and splits.train.classes == tuple("0123456789")
    # plain svhn does not need the extra file
    (tmp_path / "svhn" / "extra_32x32.mat").unlink()
    clear_cache()
    assert len(load_dataset("svhn", tmp_path, val_fraction=0.0, download=False).train) == 12
    with pytest.raises(DataError) as err:
        load_dataset("svhn-extra", tmp_path, download=False)
    assert "extra_32x32.mat" in str(err.value)
