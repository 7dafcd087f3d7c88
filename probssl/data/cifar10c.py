"""CIFAR-10-C (Hendrycks & Dietterich, ICLR 2019, "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations"): the 10,000 CIFAR-10 test images under 19 corruptions at 5 severities.

Official archive ``CIFAR-10-C.tar`` (uncompressed tar, Zenodo record 2535967), layout:

* ``CIFAR-10-C/<corruption>.npy``: uint8 ``[50000, 32, 32, 3]`` (N, H, W, C), severity-major: rows
  ``(s - 1) * 10000 .. s * 10000 - 1`` are the test set, in its original order, at severity s = 1..5;
* ``CIFAR-10-C/labels.npy``: the ``[50000]`` integer labels of those rows (the test labels five times).

The reader takes either the extracted folder or the tar itself (members are read in place, never
extracted). :func:`fetch_cifar10c` finds either under the data root, downloading the tar (MD5-checked, atomic) to
``root/cifar10c/CIFAR-10-C.tar`` when allowed. It does not extract it: reading in place spares 2.9 GB of disk, and
as no member is ever written, a crafted member name or link cannot write anywhere (the reader also refuses absolute
names, ``..`` and members that are not regular files). Only the requested severity's rows are read: the ``.npy``
header is parsed with numpy's format functions and the rows are read at their offset, which also means no pickled
object can be loaded; the small ``labels.npy`` is read with ``numpy.load(allow_pickle=False)``.
"""

from __future__ import annotations

import io
import operator
import os
import tarfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import numpy as np
import torch

from .errors import DataError
from .official import fetch_official
from .paths import resolve_data_dir

__all__ = [
    "CIFAR10C_CORRUPTIONS",
    "CIFAR10C_EXTRA",
    "CIFAR10C_FILE",
    "CIFAR10C_MD5",
    "CIFAR10C_STANDARD",
    "CIFAR10C_URL",
    "fetch_cifar10c",
    "read_cifar10c",
]

# The official file of Zenodo record 2535967 (v1, 9 January 2019), in Zenodo's current URL form.
CIFAR10C_URL = "https://zenodo.org/records/2535967/files/CIFAR-10-C.tar"
CIFAR10C_FILE = "cifar10c/CIFAR-10-C.tar"  # relative to the data root
# MD5 of CIFAR-10-C.tar (2,918,471,680 bytes) as the Zenodo record lists it (cited so by projects documenting the
# record; the record page itself was not reachable from here). torch-uncertainty checks the same value (CIFAR10C.tgz_md5
# in src/torch_uncertainty/datasets/classification/cifar/cifar_c.py), as do several independent loaders of this
# record. The archive is not available offline here, so probssl has not hashed it itself; every download is checked
# against this value. Looked up at call time (tests substitute a small tar).
CIFAR10C_MD5 = "56bf5dcef84df0e2308c6dcbcbbd8499"
FOLDER = "CIFAR-10-C"

# The 15 benchmark corruptions (noise, blur, weather, digital, in the paper's order) and the 4 extra ones
# released for validation.
CIFAR10C_STANDARD: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "impulse_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness",
    "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)  # fmt: skip
CIFAR10C_EXTRA: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
CIFAR10C_CORRUPTIONS: tuple[str, ...] = CIFAR10C_STANDARD + CIFAR10C_EXTRA

PER_SEVERITY = 10_000
_IMAGE_SHAPE = (32, 32, 3)


def read_cifar10c(
    root_or_tar: str | os.PathLike, corruption: str, severity: int, *, per_severity: int = PER_SEVERITY
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels of one corruption at one severity.

    ``root_or_tar``: ``CIFAR-10-C.tar``, the folder holding the extracted ``CIFAR-10-C/``, or ``CIFAR-10-C/``
    itself. ``severity`` in 1..(rows / per_severity) (1..5 for the official files); ``per_severity`` is the
    number of images per severity (10,000 officially; smaller only for test files).
    Returns (images uint8 [per_severity, 3, 32, 32], labels int64 [per_severity]).

    Raises:
        DataError naming the file for an unknown corruption (listing the valid ones), a missing file or
        member, an unsafe tar member name, or contents that are not the documented arrays.
    """
    if corruption not in CIFAR10C_CORRUPTIONS:
        raise DataError(
            f"Unknown CIFAR-10-C corruption {corruption!r}; the official release has {', '.join(CIFAR10C_CORRUPTIONS)}."
        )
    try:
        level = operator.index(severity)  # numpy / torch integers are fine, floats and bools are not
    except TypeError:
        level = 0
    if isinstance(severity, bool) or level < 1:
        raise DataError(f"CIFAR-10-C severity must be an integer >= 1 (1..5 officially), got {severity!r}.")
    path = Path(root_or_tar)
    start, stop = (level - 1) * per_severity, level * per_severity
    if path.is_file():
        return _from_tar(path, corruption, start, stop)
    folder = path / FOLDER if (path / FOLDER).is_dir() else path
    images_path, labels_path = folder / f"{corruption}.npy", folder / "labels.npy"
    for p in (images_path, labels_path):
        if not p.is_file():
            raise DataError(
                f"CIFAR-10-C file {p} does not exist. Extract the official {CIFAR10C_URL.rsplit('/', 1)[1]} "
                f"({CIFAR10C_URL}, MD5 {CIFAR10C_MD5}) so that {FOLDER}/ holds <corruption>.npy and labels.npy, "
                f"or pass the tar itself (fetch_cifar10c(root, download=True) downloads it)."
            )
    with open(images_path, "rb") as f:
        images = _read_rows(f, start, stop, str(images_path))
    with open(labels_path, "rb") as f:
        labels = _read_labels(f, str(labels_path))
    return _finish(images, labels, start, stop, str(labels_path))


def fetch_cifar10c(root: str | os.PathLike | None = None, *, download: bool = False) -> Path:
    """What :func:`read_cifar10c` should read under the data root ``root`` (None: ``$PROBSSL_DATA``, else the cache).

    The extracted folder ``root/cifar10c/CIFAR-10-C/`` when it exists (no MD5 for single files: the reader checks
    each array's header and size); else the MD5-verified ``root/cifar10c/CIFAR-10-C.tar``, downloaded from
    :data:`CIFAR10C_URL` when missing and ``download`` is true (2.9 GB, streamed into a temporary file and renamed
    into place only once its MD5 matches). The tar is verified once per process, not on every call.

    Raises:
        DataError naming the file, the MD5 and the fix if the tar is missing (and download is False), cannot be
        downloaded, or is corrupt (an existing file is never replaced: the message says how to repair it).
    """
    base = resolve_data_dir(root)
    folder = base / "cifar10c" / FOLDER
    if folder.is_dir():
        return folder
    manual = (
        f"fetch_cifar10c(root, download=True) downloads it from {CIFAR10C_URL} (2.9 GB); or extract that tar so that "
        f"{folder} holds <corruption>.npy and labels.npy"
    )
    return fetch_official(base, CIFAR10C_FILE, CIFAR10C_MD5, (CIFAR10C_URL,), download=download, manual=manual)


def _from_tar(path: Path, corruption: str, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
    wanted = {f"{FOLDER}/{corruption}.npy": None, f"{FOLDER}/labels.npy": None}
    try:
        with tarfile.open(path, mode="r:*") as tar:
            for member in tar.getmembers():
                name = _safe_name(member.name, path)
                if name in wanted:
                    if not member.isfile():
                        raise DataError(
                            f"CIFAR-10-C archive {path}: member {member.name} is not a regular file. {_FIX}"
                        )
                    wanted[name] = member
            missing = [n for n, m in wanted.items() if m is None]
            if missing:
                raise DataError(f"CIFAR-10-C archive {path} lacks the member(s) {', '.join(missing)}. {_FIX}")
            images_name, labels_name = wanted
            images = _read_rows(tar.extractfile(wanted[images_name]), start, stop, f"{path}:{images_name}")
            labels = _read_labels(tar.extractfile(wanted[labels_name]), f"{path}:{labels_name}")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"CIFAR-10-C archive {path} could not be read as a tar file ({exc}). {_FIX}") from exc
    return _finish(images, labels, start, stop, f"{path}:{FOLDER}/labels.npy")


_FIX = f"Replace it with the official archive {CIFAR10C_URL} (MD5 {CIFAR10C_MD5})."


def _safe_name(name: str, path: Path) -> str:
    """Member name without a leading "./"; refuse absolute names and ".." (the archive is not the official one)."""
    pure = PurePosixPath(name)
    if pure.is_absolute() or name.startswith(("/", "\\")) or ".." in pure.parts or ".." in name.split("\\"):
        raise DataError(f"CIFAR-10-C archive {path} has a member with an unsafe path, {name!r}; refusing it. {_FIX}")
    return str(PurePosixPath(*[p for p in pure.parts if p != "."])) if pure.parts else name


def _read_header(f: BinaryIO, name: str) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from a ``.npy`` header, leaving ``f`` at the start of the data; C order required."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"CIFAR-10-C file {name} is not a readable .npy array ({exc}). {_FIX}") from exc
    if fortran or dtype.hasobject:
        raise DataError(f"CIFAR-10-C file {name} is not a plain C-ordered numeric array. {_FIX}")
    return shape, dtype


def _read_rows(f: BinaryIO | None, start: int, stop: int, name: str) -> np.ndarray:
    """Rows start..stop-1 of a uint8 [rows, 32, 32, 3] ``.npy`` stream, read at their offset: [stop-start, 32, 32, 3]."""
    assert f is not None  # regular tar members always have a payload
    shape, dtype = _read_header(f, name)
    if dtype != np.uint8 or len(shape) != 4 or tuple(shape[1:]) != _IMAGE_SHAPE:
        raise DataError(
            f"CIFAR-10-C file {name} should hold uint8 [N, 32, 32, 3] images but holds {dtype} {shape}. {_FIX}"
        )
    if stop > shape[0]:
        raise DataError(
            f"CIFAR-10-C file {name} has {shape[0]} images, too few for rows {start}..{stop - 1} (the requested "
            f"severity); the official files have 50,000 (5 severities x 10,000). {_FIX}"
        )
    row = int(np.prod(_IMAGE_SHAPE))
    f.seek(start * row, os.SEEK_CUR)
    data = f.read((stop - start) * row)
    if len(data) != (stop - start) * row:
        raise DataError(f"CIFAR-10-C file {name} is truncated. {_FIX}")
    return np.frombuffer(data, dtype=np.uint8).reshape(stop - start, *_IMAGE_SHAPE)


def _read_labels(f: BinaryIO | None, name: str) -> np.ndarray:
    assert f is not None
    try:
        # Via BytesIO: numpy's loader mistakes tar member streams for real files (it calls fileno()).
        labels = np.load(io.BytesIO(f.read()), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"CIFAR-10-C file {name} is not a readable numeric .npy array ({exc}). {_FIX}") from exc
    if not isinstance(labels, np.ndarray) or labels.ndim != 1 or labels.dtype.kind not in "iuf":
        raise DataError(f"CIFAR-10-C file {name} should hold a 1-d array of labels. {_FIX}")
    return labels


def _finish(images: np.ndarray, labels: np.ndarray, start: int, stop: int, name: str):
    if len(labels) < stop:
        raise DataError(f"CIFAR-10-C file {name} has {len(labels)} labels, fewer than the {stop} rows needed. {_FIX}")
    y = labels[start:stop]
    if not np.array_equal(y, np.round(y)) or (y.size and (y.min() < 0 or y.max() > 9)):
        raise DataError(f"CIFAR-10-C file {name} should hold integer labels in 0..9. {_FIX}")
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))  # NHWC -> NCHW, a fresh copy
    return x, torch.from_numpy(y.astype(np.int64))
