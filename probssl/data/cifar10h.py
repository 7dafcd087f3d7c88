"""CIFAR-10H (Peterson et al., ICCV 2019, "Human uncertainty makes classification more robust"): human soft
labels for the 10,000 CIFAR-10 test images.

The official file ``data/cifar10h-probs.npy`` of github.com/jcpeterson/cifar-10h is a float64 ``[10000, 10]``
``.npy`` array: row i is the share of the ~50 annotators who chose each class for test image i, rows in the
original CIFAR-10 test-set order and columns in the CIFAR-10 class order. It is read with
``numpy.load(allow_pickle=False)``, so a tampered file cannot run code.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from .download import download_file, verify_file
from .errors import DataError

__all__ = [
    "CIFAR10H_FILE",
    "CIFAR10H_MD5",
    "CIFAR10H_URLS",
    "fetch_cifar10h",
    "read_cifar10h",
    "soft_label_entropy",
]

CIFAR10H_FILE = "cifar10h/cifar10h-probs.npy"  # relative to the data root
# Raw-file URLs of the official repository (branch master); both serve the same bytes.
CIFAR10H_URLS: tuple[str, ...] = (
    "https://github.com/jcpeterson/cifar-10h/raw/master/data/cifar10h-probs.npy",
    "https://raw.githubusercontent.com/jcpeterson/cifar-10h/master/data/cifar10h-probs.npy",
)
# MD5 computed from the file as committed in github.com/jcpeterson/cifar-10h (commit 48da312, 800,128 bytes).
CIFAR10H_MD5 = "7b41f73eee90fdefc73bfc820ab29ba8"

_SHAPE = (10_000, 10)
_SUM_TOLERANCE = 1e-6  # the official rows are counts / total, exact to ~1e-16


def read_cifar10h(path: str | os.PathLike) -> torch.Tensor:
    """Human soft labels of the CIFAR-10 test set from ``cifar10h-probs.npy``: float32 ``[10000, 10]``.

    Raises:
        DataError naming the file if it is missing, not a plain numeric ``.npy`` array, not ``[10000, 10]``,
        or has rows that are not probability vectors (negative, non-finite, not summing to 1).
    """
    path = Path(path)
    fix = "Replace it with the official cifar10h-probs.npy from github.com/jcpeterson/cifar-10h (data/)."
    if not path.is_file():
        raise DataError(f"CIFAR-10H file {path} does not exist. Place the official file there. {fix}")
    try:
        probs = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        # allow_pickle=False makes object arrays (pickles) a ValueError instead of running their code.
        raise DataError(f"CIFAR-10H file {path} is not a readable numeric .npy array ({exc}). {fix}") from exc
    if not isinstance(probs, np.ndarray) or probs.shape != _SHAPE or probs.dtype.kind != "f":
        got = f"{probs.dtype} array of shape {probs.shape}" if isinstance(probs, np.ndarray) else type(probs).__name__
        raise DataError(f"CIFAR-10H file {path} should hold a float [10000, 10] array but holds a {got}. {fix}")
    probs = probs.astype(np.float64, copy=False)
    if not np.isfinite(probs).all() or (probs < 0).any():
        raise DataError(f"CIFAR-10H file {path} has negative or non-finite probabilities. {fix}")
    worst = float(np.abs(probs.sum(axis=1) - 1).max())
    if worst > _SUM_TOLERANCE:
        raise DataError(
            f"CIFAR-10H file {path} has rows that do not sum to 1 (off by up to {worst:.3g}); it may be the counts "
            f"file (cifar10h-counts.npy) or damaged. {fix}"
        )
    return torch.from_numpy(np.array(probs, dtype=np.float32))


def soft_label_entropy(probs) -> torch.Tensor:
    """Shannon entropy in bits of each row, 0 log 0 = 0. Shapes: probs [N, K] -> [N] float64 in [0, log2 K]."""
    p = torch.as_tensor(probs).detach().cpu().double()
    if p.ndim != 2:
        raise ValueError(f"probs must be [N, K], got shape {tuple(p.shape)}")
    return -torch.special.xlogy(p, p).sum(1) / math.log(2)


def fetch_cifar10h(root: str | os.PathLike, *, download: bool = False) -> Path:
    """Path of the MD5-verified ``root / CIFAR10H_FILE``, downloading it from :data:`CIFAR10H_URLS` if allowed.

    Raises DataError if the file is missing (and download is False), cannot be downloaded, or is corrupt.
    """
    path = Path(root) / CIFAR10H_FILE
    if path.exists() or not download:
        verify_file(path, CIFAR10H_MD5)
        return path
    return download_file(CIFAR10H_URLS, path, CIFAR10H_MD5)
