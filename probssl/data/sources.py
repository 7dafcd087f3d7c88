"""Official files of the downloadable datasets: where they live, where they come from, their MD5.

``CHECKSUMS`` maps a path relative to the data root to the MD5 published for that file (the
values torchvision and the datasets' authors list). Loaders look it up at call time, so tests can
point them at small stand-in files with ``monkeypatch.setitem(CHECKSUMS, relpath, md5)``.
"""

from __future__ import annotations

from pathlib import Path

from .download import download_file, verify_file
from .errors import DataError

__all__ = ["CHECKSUMS", "MIRRORS", "fetch"]

_IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

CHECKSUMS: dict[str, str] = {
    "mnist/train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "mnist/train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "mnist/t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "mnist/t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    "fashion-mnist/train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "fashion-mnist/train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "fashion-mnist/t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "fashion-mnist/t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    "cifar10/cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a",
    "cifar100/cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85",
}

# Base URLs per dataset folder, tried in order; a file's URL is base + file name. The official
# MNIST host often refuses or times out, hence the widely used PyTorch CI mirror after it.
MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "http://yann.lecun.com/exdb/mnist/",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
    ),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    "cifar10": ("https://www.cs.toronto.edu/~kriz/",),
    "cifar100": ("https://www.cs.toronto.edu/~kriz/",),
}


def fetch(root: Path, relpath: str, *, download: bool) -> Path:
    """Path of the verified official file ``root / relpath``, downloading it if allowed.

    The MD5 is checked on every call (a few tens of milliseconds even for CIFAR), so a file
    damaged since the last run is caught before it is decoded. An existing file is never
    replaced, even when corrupt; the error says how to repair it.
    """
    md5 = CHECKSUMS[relpath]
    path = root / relpath
    if not path.exists():
        if not download:
            raise DataError(
                f"Data file {path} does not exist and downloading is disabled (download=False). "
                f"Place the official file there (MD5 {md5}), point data_dir or the environment "
                f"variable PROBSSL_DATA at a directory that holds {relpath}, or allow downloading."
            )
        folder, name = relpath.split("/", 1)
        download_file([base + name for base in MIRRORS.get(folder, ())], path, md5)
    verify_file(path, md5)
    return path


def idx_relpaths(folder: str) -> tuple[str, str, str, str]:
    """The four MNIST-format files of ``folder``: train images/labels, test images/labels."""
    return tuple(f"{folder}/{name}" for name in _IDX_FILES)  # type: ignore[return-value]
