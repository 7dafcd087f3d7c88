"""STL-10 (Coates, Lee & Ng, AISTATS 2011) from the official binary release: ``data.name: stl10`` and
``data.name: stl10-unlabeled``.

Official archive ``stl10_binary.tar.gz`` (http://ai.stanford.edu/~acoates/stl10/), holding ``stl10_binary/``:

* ``train_X.bin`` (5,000 images), ``test_X.bin`` (8,000), ``unlabeled_X.bin`` (100,000): raw uint8, 96x96 colour
  images one after another, each the red, then green, then blue plane, every plane in COLUMN-major order (as
  MATLAB writes it): byte ``c * 9216 + x * 96 + y`` is channel c at row y, column x;
* ``train_y.bin``, ``test_y.bin``: one uint8 label per image, 1..10 (1 = airplane ... 10 = truck);
* ``class_names.txt``; ``fold_indices.txt``: the ten predefined training folds of STL-10's own protocol, one line
  each of 1,000 space-separated 0-based indices into ``train`` (as torchvision reads them). ``data.fold: K``
  (0-9) trains on fold K only (the test split is unchanged); ``null`` (the default) uses all 5,000 images.
  torchvision lists no MD5 for this file, so it is checked by its content (ten lines of distinct indices < 5,000)
  rather than by checksum.

Files live in ``root/stl10/``: the extracted ``stl10_binary/*.bin`` are read when present; otherwise the archive
``root/stl10/stl10_binary.tar.gz`` is downloaded if missing (MD5-checked, atomic) and the needed ``.bin`` members are
extracted into ``root/stl10/stl10_binary/`` (each MD5-checked before it is renamed into place). Every ``.bin`` is
MD5-verified (once per process).

Two datasets, because an :class:`~probssl.data.ImageDataset` is either labelled or unlabelled:

* ``stl10``: the labelled set, train = the 5,000 ``train`` images, test = the 8,000 ``test`` images (10 classes);
  the validation split is carved from train by ``data.val_fraction``.
* ``stl10-unlabeled`` (alias ``stl10-unlabelled``), for pretraining: train = the 100,000 ``unlabeled`` images
  followed by the 5,000 ``train`` images (torchvision's ``train+unlabeled``: the usual STL-10 pretraining pool),
  all ``UNLABELLED``; test = the 8,000 ``test`` images with their labels withheld (every split of one dataset
  has the same classes). Evaluate the pretrained encoder on labels with ``stl10``.

The 105,000 images take 2.9 GB decoded: with ``data.in_memory: auto`` they are streamed from the ``.bin`` files
(each image read from its byte offset when indexed) when they would take more than half the available memory.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from .dataset import UNLABELLED, ImageDataset
from .errors import DataError
from .lazy import LazyImages, choose_in_memory, take_rows
from .members import MemberRef
from .official import extract_members, fetch_official, verify_once
from .paths import resolve_data_dir
from .registry import DatasetFamily, register_dataset

__all__ = ["STL10_CLASSES", "STL10_MD5", "STL10_URLS", "read_stl10_images", "read_stl10_labels"]

# The order of the official class_names.txt (label k + 1 in the .bin files).
STL10_CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")
SIDE = 96
ROW = 3 * SIDE * SIDE  # bytes per image

ARCHIVE = "stl10/stl10_binary.tar.gz"
STL10_URLS = ("http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",)
# MD5s of the archive and of each extracted file as torchvision lists them (torchvision/datasets/stl10.py, class
# STL10: tgz_md5, train_list, test_list). Looked up at call time, so tests can substitute small files.
STL10_MD5: dict[str, str] = {
    ARCHIVE: "91f7769df0f17e558f3565bffb0c7dfb",
    "stl10_binary/train_X.bin": "918c2871b30a85fa023e0c44e0bee87f",
    "stl10_binary/train_y.bin": "5a34089d4802c674881badbb80307741",
    "stl10_binary/unlabeled_X.bin": "5242ba1fed5e4be9e1e742405eb56ca4",
    "stl10_binary/test_X.bin": "7f263ba9f9e0b06b93213547f721ac82",
    "stl10_binary/test_y.bin": "36f9794fa4beb8a2c72628de14fa638e",
}
_FIX = f"Delete it so that it is extracted again from the official {ARCHIVE.split('/')[1]} ({STL10_URLS[0]})."


FOLDS = "fold_indices.txt"


def read_stl10_folds(path: Path, n_train: int) -> list[np.ndarray]:
    """The ten folds of ``fold_indices.txt``: int64 index arrays into the ``n_train`` training images.

    Raises:
        DataError naming the file if it does not hold ten lines of distinct integers in ``0..n_train-1``.
    """
    try:
        lines = [line.split() for line in path.read_text(encoding="ascii").splitlines() if line.strip()]
        folds = [np.array([int(v) for v in line], dtype=np.int64) for line in lines]
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"STL-10 fold file {path} could not be read as integers ({exc}). {_FIX}") from exc
    bad = len(folds) != 10 or any(f.size == 0 or len(set(f.tolist())) != f.size for f in folds)
    if bad or any(f.min() < 0 or f.max() >= n_train for f in folds):
        raise DataError(
            f"STL-10 fold file {path} should hold 10 lines of distinct indices in 0..{n_train - 1}; it is not the "
            f"official file. {_FIX}"
        )
    return folds


def read_stl10_labels(path: Path) -> np.ndarray:
    """int64 ``[N]`` labels 0..9 of a ``*_y.bin`` file (stored as 1..10).

    Raises:
        DataError naming the file if a byte is outside 1..10.
    """
    y = np.fromfile(path, dtype=np.uint8).astype(np.int64)
    if y.size and (y.min() < 1 or y.max() > 10):
        raise DataError(f"STL-10 label file {path} holds values outside 1..10; it is not an official file. {_FIX}")
    return y - 1


def _image_count(path: Path) -> int:
    size = path.stat().st_size
    if size % ROW:
        raise DataError(
            f"STL-10 image file {path} has {size} bytes, not a multiple of {ROW} (one 96x96x3 image); it is "
            f"truncated or not an official file. {_FIX}"
        )
    return size // ROW


def read_stl10_images(path: Path) -> torch.Tensor:
    """uint8 ``[N, 3, 96, 96]`` (row-major) of a ``*_X.bin`` file (column-major planes).

    Raises:
        DataError naming the file if its size is not a whole number of images.
    """
    _image_count(path)
    planes = np.fromfile(path, dtype=np.uint8).reshape(-1, 3, SIDE, SIDE)  # [N, C, x, y]
    return torch.from_numpy(np.ascontiguousarray(planes.transpose(0, 1, 3, 2)))


def _decode_row(ref: MemberRef) -> np.ndarray:
    """One image of a ``*_X.bin`` file, read at its offset: uint8 ``[96, 96, 3]`` (H, W, C)."""
    try:
        data = ref.read()
    except OSError as exc:
        raise DataError(f"STL-10 image {ref} could not be read ({exc}). {_FIX}") from exc
    return np.frombuffer(data, dtype=np.uint8).reshape(3, SIDE, SIDE).transpose(2, 1, 0)  # [c, x, y] -> [y, x, c]


def _lazy(path: Path) -> LazyImages:
    refs = [MemberRef(path, str(i), i * ROW, ROW) for i in range(_image_count(path))]
    return LazyImages(refs, (3, SIDE, SIDE), functools.partial(_decode_row))


def _files(root: Path, download: bool, names: tuple[str, ...]) -> tuple[str, ...]:
    """Paths of the verified ``stl10_binary/NAME`` files, extracted from the (downloaded) archive when missing
    (``fold_indices.txt`` has no official MD5: :func:`read_stl10_folds` checks it)."""
    folder = root / "stl10"
    missing = {f"stl10_binary/{n}": folder / "stl10_binary" / n for n in names}
    missing = {m: p for m, p in missing.items() if not p.exists()}
    if missing:
        archive = fetch_official(root, ARCHIVE, STL10_MD5[ARCHIVE], STL10_URLS, download=download)
        extract_members(archive, missing, STL10_MD5)
    paths = []
    for n in names:
        path = folder / "stl10_binary" / n
        if n != FOLDS:
            verify_once(path, STL10_MD5[f"stl10_binary/{n}"])
        paths.append(str(path))
    return tuple(paths)


def _dataset(images, labels: np.ndarray | None, name: str) -> ImageDataset:
    if labels is None:
        return ImageDataset(images, torch.full((len(images),), UNLABELLED, dtype=torch.int64), (), name)
    if len(labels) != len(images):
        raise DataError(f"STL-10 files of {name} do not match: {len(images)} images but {len(labels)} labels. {_FIX}")
    return ImageDataset(images, torch.from_numpy(labels), STL10_CLASSES, name)


def _images(paths: list[Path], memory: bool):
    """The images of the ``*_X.bin`` files ``paths``, one after another: a tensor, or streamed from the files."""
    if memory:
        parts = [read_stl10_images(p) for p in paths]
        return parts[0] if len(parts) == 1 else torch.cat(parts)
    refs = [ref for p in paths for ref in _lazy(p).paths]
    return LazyImages(refs, (3, SIDE, SIDE), functools.partial(_decode_row))


def _fold(train: ImageDataset, folds_path: Path, fold: int) -> ImageDataset:
    """The training images of one official fold, in the file's order."""
    rows = torch.from_numpy(read_stl10_folds(folds_path, len(train))[fold])
    return ImageDataset(take_rows(train.images, rows), train.labels[rows], STL10_CLASSES, train.name)


def _decode(source: tuple) -> tuple[ImageDataset, None, ImageDataset]:
    """``(train, None, test)`` of a located STL-10 source ``(name, paths, md5s, in_memory, fold)``; with a fold the
    last path is ``fold_indices.txt``."""
    name, paths, _, in_memory, fold = source
    paths = [Path(p) for p in paths]
    folds_path = paths.pop() if fold is not None else None
    test_x, test_y, *rest = paths
    train_files = rest[:1] if name == "stl10" else rest  # stl10-unlabeled: unlabeled_X.bin, then train_X.bin
    n = sum(_image_count(p) for p in [test_x, *train_files])
    memory = choose_in_memory(in_memory, n * ROW, str(test_x.parent)).in_memory
    labelled = name == "stl10"
    train = _dataset(_images(train_files, memory), read_stl10_labels(rest[1]) if labelled else None, name)
    test = _dataset(_images([test_x], memory), read_stl10_labels(test_y) if labelled else None, name)
    if folds_path is not None:
        train = _fold(train, folds_path, fold)
    return train, None, test


def _family(name: str, aliases: tuple[str, ...]) -> DatasetFamily:
    names = ("test_X.bin", "test_y.bin")
    names += ("train_X.bin", "train_y.bin") if name == "stl10" else ("unlabeled_X.bin", "train_X.bin")

    def locate(data_dir, download: bool, in_memory="auto", fold: int | None = None) -> tuple:
        if fold is not None and (isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold <= 9):
            raise DataError(f"data.fold must be null or an integer 0-9 (an official STL-10 fold), got {fold!r}.")
        if fold is not None and name != "stl10":
            raise DataError(f"data.fold selects labelled training images: use data.name: stl10, not {name}.")
        paths = _files(resolve_data_dir(data_dir), download, names + ((FOLDS,) if fold is not None else ()))
        return (name, paths, tuple(STL10_MD5[f"stl10_binary/{n}"] for n in names), in_memory, fold)

    return DatasetFamily(
        name,
        locate,
        _decode,
        description="STL-10, the official binary release: 5,000 labelled train, 8,000 test images, 96x96"
        if name == "stl10"
        else "STL-10 for pretraining: the 100,000 unlabeled + 5,000 train images, unlabelled; test = the 8,000 test "
        "images without labels",
        aliases=aliases,
        files=tuple((f"stl10/stl10_binary/{n}", STL10_MD5[f"stl10_binary/{n}"]) for n in names)
        + ((ARCHIVE, STL10_MD5[ARCHIVE]),),
        urls=STL10_URLS,
        options=("in_memory", "fold"),
    )


register_dataset(_family("stl10", ("stl-10",)))
register_dataset(_family("stl10-unlabeled", ("stl10-unlabelled", "stl-10-unlabeled")))
