"""CIFAR-10/100 readers on small archives with the official member names and pickle layout."""

import hashlib
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from probssl.data import DataError, load_dataset, sources
from probssl.data.safe_pickle import UnsafePickleError, safe_load

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_tar(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def batch(rng, n: int, n_classes: int, label_key: bytes, protocol: int) -> tuple[bytes, np.ndarray, list]:
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, n_classes, n)]
    # Official files: dicts with bytes keys (Python 2 str), uint8 [N, 3072] data, list labels.
    obj = {b"batch_label": b"training batch", b"data": data, label_key: labels, b"filenames": [b"x.png"] * n}
    return pickle.dumps(obj, protocol=protocol), data, labels


def make_cifar10(root: Path, monkeypatch, protocol: int = 2, per_batch: int = 20):
    rng = np.random.default_rng(0)
    members, train_data, train_labels = {}, [], []
    for i in range(1, 6):
        blob, data, labels = batch(rng, per_batch, 10, b"labels", protocol)
        members[f"cifar-10-batches-py/data_batch_{i}"] = blob
        train_data.append(data)
        train_labels += labels
    blob, test_data, test_labels = batch(rng, 30, 10, b"labels", protocol)
    members["cifar-10-batches-py/test_batch"] = blob
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps(
        {b"label_names": [n.encode() for n in CIFAR10_NAMES], b"num_vis": 3072}, protocol=protocol
    )
    members["cifar-10-batches-py/readme.html"] = b"<html></html>"
    path = write_tar(root / "cifar10" / "cifar-10-python.tar.gz", members)
    monkeypatch.setitem(sources.CHECKSUMS, "cifar10/cifar-10-python.tar.gz", md5(path))
    return np.concatenate(train_data), np.array(train_labels), test_data, np.array(test_labels)


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar10_reader(tmp_path, monkeypatch, protocol):
    train_data, train_labels, test_data, test_labels = make_cifar10(tmp_path, monkeypatch, protocol)
    s = load_dataset("cifar10", tmp_path, val_fraction=0.0, download=False)
    assert s.name == "cifar10" and s.image_shape == (3, 32, 32) and s.num_classes == 10
    assert s.train.classes == tuple(CIFAR10_NAMES)
    assert len(s.train) == 100 and len(s.val) == 0 and len(s.test) == 30
    assert s.train.images.dtype == torch.uint8 and s.train.images.is_contiguous()
    assert s.train.labels.dtype == torch.int64
    # With val_fraction=0 the training split is the five batches in order.
    assert torch.equal(s.train.images, torch.from_numpy(train_data).reshape(100, 3, 32, 32))
    assert s.train.labels.tolist() == train_labels.tolist()
    # Row-major RGB planes: pixel (row 1, col 2) of channel c is element c*1024 + 1*32 + 2.
    for c in range(3):
        assert int(s.test.images[4, c, 1, 2]) == int(test_data[4, c * 1024 + 34])
    assert s.test.labels.tolist() == test_labels.tolist()


def test_cifar10_val_split(tmp_path, monkeypatch):
    make_cifar10(tmp_path, monkeypatch, per_batch=40)
    s = load_dataset("cifar10", tmp_path, val_fraction=0.1, split_seed=4, download=False)
    assert len(s.train) == 180 and len(s.val) == 20


def test_cifar100_reader(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    train_blob, train_data, train_labels = batch(rng, 300, 100, b"fine_labels", 2)
    test_blob, test_data, test_labels = batch(rng, 50, 100, b"fine_labels", 2)
    fine = [f"class_{i:03d}".encode() for i in range(100)]
    members = {
        "cifar-100-python/file.txt~": b"",
        "cifar-100-python/meta": pickle.dumps({b"fine_label_names": fine, b"coarse_label_names": fine[:20]}),
        "cifar-100-python/test": test_blob,
        "cifar-100-python/train": train_blob,
    }
    path = write_tar(tmp_path / "cifar100" / "cifar-100-python.tar.gz", members)
    monkeypatch.setitem(sources.CHECKSUMS, "cifar100/cifar-100-python.tar.gz", md5(path))
    s = load_dataset("CIFAR-100", tmp_path, val_fraction=0.0, download=False)
    assert s.name == "cifar100" and s.num_classes == 100 and s.train.classes[7] == "class_007"
    assert len(s.train) == 300 and len(s.test) == 50
    assert torch.equal(s.test.images.reshape(50, -1), torch.from_numpy(test_data))
    assert s.train.labels.tolist() == train_labels


def test_archive_checksum_mismatch(tmp_path, monkeypatch):
    make_cifar10(tmp_path, monkeypatch)
    monkeypatch.setitem(sources.CHECKSUMS, "cifar10/cifar-10-python.tar.gz", "1" * 32)
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", tmp_path, download=True)
    assert "cifar-10-python.tar.gz" in str(err.value) and "1" * 32 in str(err.value)


def test_missing_archive_without_download(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", tmp_path, download=False)
    assert "cifar-10-python.tar.gz" in str(err.value) and "c58f30108f718f92721af3b95e74349a" in str(err.value)


class _Evil:
    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_malicious_pickle_refused(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    good = pickle.dumps({b"label_names": [n.encode() for n in CIFAR10_NAMES]}, protocol=2)
    members = {f"cifar-10-batches-py/data_batch_{i}": good for i in range(1, 6)}
    members["cifar-10-batches-py/test_batch"] = pickle.dumps({b"data": _Evil(str(marker))}, protocol=2)
    members["cifar-10-batches-py/batches.meta"] = good
    path = write_tar(tmp_path / "cifar10" / "cifar-10-python.tar.gz", members)
    monkeypatch.setitem(sources.CHECKSUMS, "cifar10/cifar-10-python.tar.gz", md5(path))
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", tmp_path, download=False)
    msg = str(err.value)
    assert "cifar-10-batches-py/test_batch" in msg and "system" in msg and str(path) in msg
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        pickle.dumps(os.system, protocol=2),
        pickle.dumps(_Evil("/tmp/never"), protocol=5),
        # eval via builtins, spelled by hand as pickle opcodes: GLOBAL builtins.eval, args, REDUCE.
        b"cbuiltins\neval\n(S'1+1'\ntR.",
        b"c__builtin__\neval\n(S'1+1'\ntR.",
        # _codecs.encode is allowed only as a latin1 text->bytes conversion.
        b"c_codecs\nencode\n(S'x'\nS'zlib_codec'\ntR.",
    ],
)
def test_restricted_unpickler_refuses_globals(payload):
    with pytest.raises(UnsafePickleError):
        safe_load(payload)


def test_restricted_unpickler_allows_numpy_and_plain_data():
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        obj = safe_load(pickle.dumps({b"a": arr, "b": [1, 2.5, "x", b"y", (None, True)]}, protocol=protocol))
        assert np.array_equal(obj[b"a"], arr) and obj["b"] == [1, 2.5, "x", b"y", (None, True)]


def test_missing_member(tmp_path, monkeypatch):
    blob = pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]}, protocol=2)
    path = write_tar(tmp_path / "cifar10" / "cifar-10-python.tar.gz", {"cifar-10-batches-py/test_batch": blob})
    monkeypatch.setitem(sources.CHECKSUMS, "cifar10/cifar-10-python.tar.gz", md5(path))
    with pytest.raises(DataError, match="data_batch_1"):
        load_dataset("cifar10", tmp_path, download=False)


def test_not_a_tarball(tmp_path, monkeypatch):
    path = tmp_path / "cifar10" / "cifar-10-python.tar.gz"
    path.parent.mkdir()
    path.write_bytes(b"\x1f\x8b not really gzip")
    monkeypatch.setitem(sources.CHECKSUMS, "cifar10/cifar-10-python.tar.gz", md5(path))
    with pytest.raises(DataError, match="could not be read as a tar.gz"):
        load_dataset("cifar10", tmp_path, download=False)


def test_wrong_data_shape(tmp_path, monkeypatch):
    bad = pickle.dumps({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}, protocol=2)
    meta = pickle.dumps({b"label_names": [n.encode() for n in CIFAR10_NAMES]}, protocol=2)
    members = {f"cifar-10-batches-py/data_batch_{i}": bad for i in range(1, 6)}
    members.update({"cifar-10-batches-py/test_batch": bad, "cifar-10-batches-py/batches.meta": meta})
    path = write_tar(tmp_path / "cifar10" / "cifar-10-python.tar.gz", members)
    monkeypatch.setitem(sources.CHECKSUMS, "cifar10/cifar-10-python.tar.gz", md5(path))
    with pytest.raises(DataError, match=r"uint8 \[N, 3072\].*\(4, 100\)"):
        load_dataset("cifar10", tmp_path, download=False)
