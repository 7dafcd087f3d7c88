"""IDX (MNIST-format) reader and the mnist / fashion-mnist loaders on small files written here."""

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from probssl.data import DataError, load_dataset, sources
from probssl.data.idx import read_idx_images, read_idx_labels


def write_idx(path: Path, array: np.ndarray, *, magic: int | None = None, compress: bool = True) -> Path:
    """Write a uint8 array in IDX format (big-endian header), gzip-compressed by default."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x0800 | array.ndim
    payload = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def make_mnist_folder(root: Path, folder: str, n_train: int = 120, n_test: int = 30, seed: int = 0):
    """Four IDX files in the official names; labels cycle 0..9 so every class is present."""
    rng = np.random.default_rng(seed)
    d = root / folder
    d.mkdir(parents=True)
    data = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": (np.arange(n_test) * 3 % 10).astype(np.uint8),
    }
    for name, arr in data.items():
        write_idx(d / name, arr)
    return data


@pytest.fixture
def patched_checksums(monkeypatch):
    """Point sources.CHECKSUMS at whatever files a test wrote (and forbid downloads)."""

    def patch(root: Path, folder: str):
        for path in (root / folder).iterdir():
            monkeypatch.setitem(sources.CHECKSUMS, f"{folder}/{path.name}", md5(path))

    monkeypatch.setattr(sources, "MIRRORS", {})
    return patch


def test_roundtrip_gz_and_raw(tmp_path):
    images = np.random.default_rng(1).integers(0, 256, (5, 4, 3), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    got = read_idx_images(write_idx(tmp_path / "x-idx3-ubyte.gz", images))
    assert got.dtype == np.uint8 and got.shape == (5, 4, 3) and np.array_equal(got, images)
    assert got.flags.writeable
    raw = read_idx_images(write_idx(tmp_path / "x-idx3-ubyte", images, compress=False))
    assert np.array_equal(raw, images)
    assert np.array_equal(read_idx_labels(write_idx(tmp_path / "y-idx1-ubyte.gz", labels)), labels)


def test_truncated_file_names_file(tmp_path):
    images = np.zeros((10, 28, 28), dtype=np.uint8)
    good = write_idx(tmp_path / "good.gz", images, compress=False).read_bytes()
    # Valid gzip around a payload that stops short of what the header promises.
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    bad.write_bytes(gzip.compress(good[:-100]))
    with pytest.raises(DataError) as err:
        read_idx_images(bad)
    msg = str(err.value)
    assert str(bad) in msg and "10 x 28 x 28 = 7840 bytes" in msg and "7740" in msg
    assert "\n" not in msg


def test_truncated_gzip_stream(tmp_path):
    images = np.arange(2000, dtype=np.uint8).reshape(20, 10, 10)
    path = write_idx(tmp_path / "cut-idx3-ubyte.gz", images)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(DataError, match="cut-idx3-ubyte.gz.*truncated"):
        read_idx_images(path)


def test_not_gzip(tmp_path):
    path = tmp_path / "garbage-idx3-ubyte.gz"
    path.write_bytes(b"this is not gzip data at all" * 10)
    with pytest.raises(DataError, match="garbage-idx3-ubyte.gz"):
        read_idx_images(path)


def test_wrong_magic_names_file(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    path = write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    # A label file where an image file is expected.
    with pytest.raises(DataError) as err:
        read_idx_images(path)
    assert str(path) in str(err.value) and "2049" in str(err.value) and "2051" in str(err.value)
    path = write_idx(tmp_path / "weird.gz", labels, magic=0x0D01)  # float type, 1 dim
    with pytest.raises(DataError, match="weird.gz.*magic number 3329"):
        read_idx_labels(path)


def test_shorter_than_header(tmp_path):
    path = tmp_path / "tiny.gz"
    path.write_bytes(gzip.compress(struct.pack(">I", 2051) + b"\x00\x00"))
    with pytest.raises(DataError, match="tiny.gz is only 6 bytes long"):
        read_idx_images(path)


def test_decoding_is_fast(tmp_path):
    import time

    # MNIST-sized; tiling a random block keeps the test itself cheap.
    block = np.random.default_rng(0).integers(0, 256, (600, 28, 28), dtype=np.uint8)
    images = np.tile(block, (100, 1, 1))
    path = write_idx(tmp_path / "big-idx3-ubyte", images, compress=False)
    start = time.perf_counter()
    got = read_idx_images(path)
    assert time.perf_counter() - start < 1.0
    assert np.array_equal(got[-1], images[-1])


def test_load_mnist_from_stand_in_files(tmp_path, patched_checksums):
    data = make_mnist_folder(tmp_path, "mnist")
    patched_checksums(tmp_path, "mnist")
    s = load_dataset("mnist", tmp_path, val_fraction=0.25, download=False)
    assert s.name == "mnist" and s.image_shape == (1, 28, 28) and s.num_classes == 10
    assert len(s.train) == 90 and len(s.val) == 30 and len(s.test) == 30
    assert s.train.labels.bincount().tolist() == [9] * 10
    assert torch.equal(s.test.images[:, 0], torch.from_numpy(data["t10k-images-idx3-ubyte.gz"]))
    assert s.test.labels.tolist() == data["t10k-labels-idx1-ubyte.gz"].tolist()
    # Train and val together are exactly the training file, each image with its own label.
    pairs = {
        (img.tobytes(), int(y))
        for img, y in zip(data["train-images-idx3-ubyte.gz"], data["train-labels-idx1-ubyte.gz"])
    }
    got = {(img[0].numpy().tobytes(), int(y)) for ds in (s.train, s.val) for img, y in zip(ds.images, ds.labels)}
    assert got == pairs


def test_load_fashion_mnist_class_names(tmp_path, patched_checksums):
    make_mnist_folder(tmp_path, "fashion-mnist", seed=3)
    patched_checksums(tmp_path, "fashion-mnist")
    s = load_dataset("fashion_mnist", tmp_path, download=False)
    assert s.name == "fashion-mnist"
    assert s.train.classes[0] == "T-shirt/top" and s.train.classes[9] == "Ankle boot"


def test_label_count_mismatch(tmp_path, patched_checksums):
    make_mnist_folder(tmp_path, "mnist")
    write_idx(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz", np.zeros(29, dtype=np.uint8))
    patched_checksums(tmp_path, "mnist")
    with pytest.raises(DataError, match="30 images but 29 labels"):
        load_dataset("mnist", tmp_path, download=False)


def test_missing_file_without_download(tmp_path, patched_checksums):
    make_mnist_folder(tmp_path, "mnist")
    patched_checksums(tmp_path, "mnist")
    (tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError) as err:
        load_dataset("mnist", tmp_path, download=False)
    msg = str(err.value)
    assert str(tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz") in msg and "download=False" in msg
    assert sources.CHECKSUMS["mnist/t10k-images-idx3-ubyte.gz"] in msg


def test_corrupt_file_is_reported_not_replaced(tmp_path, patched_checksums):
    make_mnist_folder(tmp_path, "mnist")
    patched_checksums(tmp_path, "mnist")
    victim = tmp_path / "mnist" / "train-labels-idx1-ubyte.gz"
    expected = sources.CHECKSUMS["mnist/train-labels-idx1-ubyte.gz"]
    victim.write_bytes(victim.read_bytes()[:-3])
    before = victim.read_bytes()
    with pytest.raises(DataError) as err:
        load_dataset("mnist", tmp_path, download=True)
    msg = str(err.value)
    assert str(victim) in msg and expected in msg and md5(victim) in msg and "Delete it" in msg
    assert victim.read_bytes() == before


def test_real_checksum_table_matches_shared_readme():
    # The values published by the datasets' authors (and torchvision).
    assert sources.CHECKSUMS["mnist/train-images-idx3-ubyte.gz"] == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert sources.CHECKSUMS["fashion-mnist/t10k-labels-idx1-ubyte.gz"] == "bb300cfdad3c16e7a12a480ee83cd310"
    assert sources.MIRRORS["mnist"][0] == "http://yann.lecun.com/exdb/mnist/"
