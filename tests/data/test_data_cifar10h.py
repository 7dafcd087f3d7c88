"""CIFAR-10H reader on files written in the official format (float64 [10000, 10] .npy)."""

import hashlib
import math
import os

import numpy as np
import pytest
import torch

from probssl.data import DataError, cifar10h
from probssl.data.cifar10h import fetch_cifar10h, read_cifar10h, soft_label_entropy


def official_like(path, seed=0):
    """Counts out of ~50 annotators normalised per row, as cifar10h-probs.npy is built."""
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(50, rng.dirichlet(np.full(10, 0.3), 10_000)[0], 10_000).astype(np.float64)
    counts[0] = [0, 0, 0, 51, 0, 0, 0, 0, 0, 0]  # a unanimous image
    probs = counts / counts.sum(1, keepdims=True)
    np.save(path, probs)
    return probs


def test_read_official_format(tmp_path):
    probs = official_like(tmp_path / "cifar10h-probs.npy")
    out = read_cifar10h(tmp_path / "cifar10h-probs.npy")
    assert out.shape == (10_000, 10) and out.dtype == torch.float32
    assert torch.allclose(out, torch.from_numpy(probs).float())
    assert out[0].tolist() == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]


def test_soft_label_entropy_bits():
    p = torch.tensor([[1.0, 0, 0, 0], [0.5, 0.5, 0, 0], [0.25] * 4])
    assert soft_label_entropy(p).tolist() == [0.0, 1.0, 2.0]
    assert soft_label_entropy(torch.full((1, 10), 0.1, dtype=torch.float64))[0] == pytest.approx(
        math.log2(10), abs=1e-12
    )


@pytest.mark.parametrize(
    "array, needle",
    [
        (np.full((10_000, 10), 5.0), "do not sum to 1"),  # the counts file
        (np.full((100, 10), 0.1), "[10000, 10]"),
        (np.full((10_000, 10), 1, dtype=np.int64), "[10000, 10]"),
        (
            np.where(np.arange(10) == 0, 1.5, np.where(np.arange(10) == 1, -0.5, 0.0))[None].repeat(10_000, 0),
            "negative",
        ),
    ],
)
def test_invalid_contents(tmp_path, array, needle):
    path = tmp_path / "cifar10h-probs.npy"
    np.save(path, array)
    with pytest.raises(DataError) as err:
        read_cifar10h(path)
    assert str(path) in str(err.value) and needle in str(err.value) and "jcpeterson/cifar-10h" in str(err.value)


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_pickled_object_array_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "cifar10h-probs.npy"
    np.save(path, np.array([_Evil(str(marker))], dtype=object), allow_pickle=True)
    with pytest.raises(DataError) as err:
        read_cifar10h(path)
    assert str(path) in str(err.value) and not marker.exists()
    with pytest.raises(DataError, match="does not exist"):
        read_cifar10h(tmp_path / "missing.npy")


def test_fetch_verifies_and_downloads(tmp_path, monkeypatch):
    source = tmp_path / "src" / "cifar10h-probs.npy"
    source.parent.mkdir()
    official_like(source)
    md5 = hashlib.md5(source.read_bytes()).hexdigest()
    with pytest.raises(DataError) as err:
        fetch_cifar10h(tmp_path / "root")
    assert cifar10h.CIFAR10H_MD5 in str(err.value)
    monkeypatch.setattr(cifar10h, "CIFAR10H_MD5", md5)
    monkeypatch.setattr(cifar10h, "CIFAR10H_URLS", (source.as_uri(),))
    path = fetch_cifar10h(tmp_path / "root", download=True)
    assert path == tmp_path / "root" / "cifar10h" / "cifar10h-probs.npy"
    assert read_cifar10h(path).shape == (10_000, 10)
    assert fetch_cifar10h(tmp_path / "root") == path  # verified, no download needed
