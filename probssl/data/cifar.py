"""CIFAR-10 and CIFAR-100 from the official "python version" archives.

The archive is read member by member straight from the ``.tar.gz`` (nothing is extracted to
disk, so there is no second copy to keep in sync and no path-traversal risk from member names).
Each batch is a pickled dict, decoded with the restricted unpickler of :mod:`.safe_pickle`:

* ``data``: uint8 ``[N, 3072]``, each row the 1024 red, then green, then blue values of a
  32x32 image in row-major order, i.e. exactly ``[N, 3, 32, 32]`` after a reshape;
* ``labels`` (CIFAR-10) or ``fine_labels`` (CIFAR-100): ``N`` ints;
* the meta member holds ``label_names`` (CIFAR-10) or ``fine_label_names`` (CIFAR-100).

The files were pickled by Python 2, so depending on the decoding the dict keys arrive as ``str``
or as ``bytes`` (``b"data"``); both are accepted.
"""

from __future__ import annotations

import pickle
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .dataset import ImageDataset
from .errors import DataError
from .paths import resolve_data_dir
from .registry import DatasetFamily, register_dataset
from .safe_pickle import safe_load
from .sources import CHECKSUMS, MIRRORS, fetch

__all__ = ["CifarLayout", "CIFAR10", "CIFAR100", "read_cifar_archive"]


@dataclass(frozen=True)
class CifarLayout:
    """Member names and keys of one official CIFAR archive."""

    name: str
    relpath: str  # archive path relative to the data root (a key of sources.CHECKSUMS)
    train_members: tuple[str, ...]
    test_member: str
    meta_member: str
    label_key: str
    names_key: str
    num_classes: int


CIFAR10 = CifarLayout(
    name="cifar10",
    relpath="cifar10/cifar-10-python.tar.gz",
    train_members=tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)),
    test_member="cifar-10-batches-py/test_batch",
    meta_member="cifar-10-batches-py/batches.meta",
    label_key="labels",
    names_key="label_names",
    num_classes=10,
)

CIFAR100 = CifarLayout(
    name="cifar100",
    relpath="cifar100/cifar-100-python.tar.gz",
    train_members=("cifar-100-python/train",),
    test_member="cifar-100-python/test",
    meta_member="cifar-100-python/meta",
    # The 100 fine classes; the 20 coarse superclasses are not used.
    label_key="fine_labels",
    names_key="fine_label_names",
    num_classes=100,
)

_SIDE = 32


def read_cifar_archive(path: Path, layout: CifarLayout) -> tuple[ImageDataset, ImageDataset]:
    """Decode ``(train, test)`` from the archive at ``path``.

    Returns datasets with images uint8 ``[N, 3, 32, 32]`` and labels int64 ``[N]``
    (50000 / 10000 images for the official files).

    Raises:
        DataError naming the archive (and member) if it is not a readable tar.gz, a member is
        missing, a pickle references anything but plain data and numpy arrays, or the decoded
        contents do not have the documented structure.
    """
    wanted = {*layout.train_members, layout.test_member, layout.meta_member}
    found: dict[str, Any] = {}
    try:
        # Streaming mode ("r|gz") reads the gzip stream once, front to back; random access into
        # a gzip file would re-decompress from the start for every backward seek.
        with tarfile.open(path, mode="r|gz") as tar:
            for member in tar:
                if member.name in wanted and member.isfile():
                    f = tar.extractfile(member)
                    assert f is not None  # regular files always have a payload
                    found[member.name] = _unpickle(f, path, member.name)
    except DataError:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"CIFAR archive {path} could not be read as a tar.gz file ({exc}); it is truncated "
            f"or not the official archive. Delete it and download it again, or replace it with "
            f"the official file."
        ) from exc

    missing = sorted(wanted - found.keys())
    if missing:
        raise DataError(
            f"CIFAR archive {path} lacks the member(s) {', '.join(missing)} that the official "
            f"{layout.name} python-version archive contains; it is not the right file. Replace "
            f"it with the official archive."
        )

    names = _field(found[layout.meta_member], layout.names_key, path, layout.meta_member)
    if not isinstance(names, (list, tuple)) or len(names) != layout.num_classes:
        raise DataError(
            f"CIFAR archive {path}: member {layout.meta_member} should list "
            f"{layout.num_classes} class names under '{layout.names_key}'; it is not the "
            f"official {layout.name} archive. Replace it with the official file."
        )
    classes = tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names)

    batches = [_batch(found[m], path, m, layout) for m in layout.train_members]
    train_x = np.concatenate([x for x, _ in batches])
    train_y = np.concatenate([y for _, y in batches])
    test_x, test_y = _batch(found[layout.test_member], path, layout.test_member, layout)
    return (
        ImageDataset(torch.from_numpy(train_x), torch.from_numpy(train_y), classes, layout.name),
        ImageDataset(torch.from_numpy(test_x), torch.from_numpy(test_y), classes, layout.name),
    )


def _unpickle(f: Any, path: Path, member: str) -> Any:
    try:
        return safe_load(f)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        # UnsafePickleError is an UnpicklingError; malformed pickles raise any of the others.
        raise DataError(
            f"CIFAR archive {path}: member {member} could not be unpickled safely ({exc}). "
            f"Official CIFAR files contain only plain data and numpy arrays, so this archive is "
            f"damaged or not the official one; delete it and download it again, or replace it "
            f"with the official file."
        ) from exc


def _field(obj: Any, key: str, path: Path, member: str) -> Any:
    if isinstance(obj, dict):
        for k in (key, key.encode("latin1")):
            if k in obj:
                return obj[k]
    raise DataError(
        f"CIFAR archive {path}: member {member} has no '{key}' entry; it is not the official "
        f"archive. Replace it with the official file."
    )


def _batch(obj: Any, path: Path, member: str, layout: CifarLayout) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 [N, 3, 32, 32], labels int64 [N])`` of one pickled batch."""
    data = _field(obj, "data", path, member)
    labels = _field(obj, layout.label_key, path, member)
    row = 3 * _SIDE * _SIDE
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == row):
        if isinstance(data, np.ndarray):
            got = f"{data.dtype} array of shape {data.shape}"
        else:
            got = type(data).__name__
        raise DataError(
            f"CIFAR archive {path}: member {member} should hold a uint8 [N, {row}] array under "
            f"'data' but holds a {got}; it is not the official archive. Replace it with the "
            f"official file."
        )
    try:
        y = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"CIFAR archive {path}: member {member} has non-integer '{layout.label_key}'; it is "
            f"not the official archive. Replace it with the official file."
        ) from exc
    if y.shape != (data.shape[0],) or (y.size and (y.min() < 0 or y.max() >= layout.num_classes)):
        raise DataError(
            f"CIFAR archive {path}: member {member} should have {data.shape[0]} labels in "
            f"[0, {layout.num_classes}) under '{layout.label_key}'; it is not the official "
            f"archive. Replace it with the official file."
        )
    # Copy: arrays rebuilt from protocol-5 pickles can be read-only views of the pickle bytes.
    images = np.array(data.reshape(-1, 3, _SIDE, _SIDE), order="C", copy=True)
    return images, y


def _cifar_family(name: str, layout: CifarLayout, aliases: tuple[str, ...]) -> DatasetFamily:
    def locate(data_dir, download: bool) -> tuple:
        path = fetch(resolve_data_dir(data_dir), layout.relpath, download=download)
        return (str(path), CHECKSUMS[layout.relpath])

    def decode(source) -> tuple[ImageDataset, None, ImageDataset]:
        train, test = read_cifar_archive(Path(source[0]), layout)
        return train, None, test

    return DatasetFamily(
        name,
        locate,
        decode,
        description=f"{name.upper()}, the official python-pickle archive (read with a restricted unpickler)",
        aliases=aliases,
        files=((layout.relpath, CHECKSUMS[layout.relpath]),),
        urls=MIRRORS[name],
    )


register_dataset(_cifar_family("cifar10", CIFAR10, ("cifar-10",)))
register_dataset(_cifar_family("cifar100", CIFAR100, ("cifar-100",)))
