"""Dataset names, :func:`load_dataset`, and the in-process cache behind it."""

from __future__ import annotations

import difflib
import functools
import numbers
import operator
import os
from pathlib import Path

import torch

from .cifar import CIFAR10, CIFAR100, read_cifar_archive
from .dataset import DataSplits, ImageDataset
from .digits import load_digits_dataset
from .errors import DataError
from .folder import read_folder, scan_folder
from .mnist import CLASSES_BY_NAME, read_idx_pair
from .paths import resolve_data_dir
from .sources import CHECKSUMS, fetch, idx_relpaths
from .splits import STREAM_SUBSET, STREAM_VAL, seeded_rng, stratified_split

__all__ = ["DATASETS", "load_dataset", "canonical_name", "clear_cache"]

DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion-mnist", "cifar10", "cifar100", "folder")

# Spellings people commonly use for the same datasets.
_ALIASES = {
    "fashionmnist": "fashion-mnist",
    "fmnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "cifar-100": "cifar100",
}
_CIFAR = {"cifar10": CIFAR10, "cifar100": CIFAR100}

# Hashable description of verified files on disk; decoding is cached on it. One of
# ("digits",) | ("idx", name, paths, md5s) | ("cifar", name, path, md5) | ("folder", FolderScan).
# The MD5s are part of the key so a test that swaps in stand-in files and checksums never gets
# data decoded from the previous files.
_Source = tuple


def canonical_name(name: str) -> str:
    """The entry of :data:`DATASETS` that ``name`` refers to (case, ``_`` and aliases forgiven).

    Raises:
        DataError listing the valid names, with a "did you mean" suggestion when one is close.
    """
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a string, got {type(name).__name__}")
    key = name.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key in DATASETS:
        return key
    close = difflib.get_close_matches(key, [*DATASETS, *_ALIASES], n=1, cutoff=0.6)
    hint = f" Did you mean '{_ALIASES.get(close[0], close[0])}'?" if close else ""
    raise DataError(f"Unknown dataset {name!r}.{hint} Valid names: {', '.join(DATASETS)}.")


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    download: bool = True,
    train_subset: int | None = None,
) -> DataSplits:
    """Load a dataset as train / val / test :class:`ImageDataset` splits.

    Args:
        name: one of :data:`DATASETS`.
        data_dir: root of the data directory (see :func:`resolve_data_dir`; ``mnist`` is read
            from ``data_dir/mnist/`` and so on). For ``"folder"`` it is instead the folder that
            holds ``train/`` and ``test/`` and is required. Ignored for ``"digits"``.
        val_fraction: fraction of the training images carved out as the validation split,
            stratified by label; in ``[0, 1)``. The number held out is
            ``round(val_fraction * n_train)``, at least one image when ``val_fraction > 0``.
            Ignored by a folder dataset that has its own ``val/``.
        split_seed: seed of the validation carving and of ``train_subset``. The test split never
            depends on it (``digits`` uses a fixed seed for its test split).
        download: fetch missing official files from their URLs (MD5-checked). With ``False`` a
            missing file is a :class:`DataError`.
        train_subset: if given, keep at most this many training images after the validation
            split is carved (a seeded, stratified random subset), for quick runs; a value at
            least as large as the training split keeps all of it. The validation and test splits
            are unaffected.

    Returns:
        :class:`DataSplits` with images uint8 ``[N, C, H, W]`` and labels int64 ``[N]``. MD5s of
        official files are verified on every call, but decoding and splitting are cached
        in-process: repeated calls with the same arguments return the *same* tensors, so callers
        must not modify them in place.

    Raises:
        DataError: unknown name, invalid option, or a file missing, corrupt or undecodable.
    """
    key = canonical_name(name)
    val_fraction = _check_fraction(val_fraction)
    split_seed = _check_int("split_seed", split_seed, minimum=0)
    if train_subset is not None:
        train_subset = _check_int("train_subset", train_subset, minimum=1)
    source = _locate(key, data_dir, download=download)
    return _split(source, val_fraction, split_seed, train_subset)


def _check_fraction(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise DataError(f"val_fraction must be a number in [0, 1), got {value!r}.")
    return float(value)


def _check_int(what: str, value: object, *, minimum: int) -> int:
    # operator.index accepts numpy and torch integers but rejects floats like 3.0.
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        number = None
    if number is None or isinstance(value, bool) or number < minimum:
        raise DataError(f"{what} must be an integer >= {minimum}, got {value!r}.")
    return number


def clear_cache() -> None:
    """Forget every decoded dataset (e.g. to free memory)."""
    _decode.cache_clear()
    _split.cache_clear()


def _locate(key: str, data_dir: str | os.PathLike | None, *, download: bool) -> _Source:
    """Find (download if allowed) and verify the files; cheap enough to run on every load."""
    if key == "digits":
        return ("digits",)
    if key == "folder":
        if data_dir is None or str(data_dir) == "":
            raise DataError(
                "The 'folder' dataset needs data_dir: the folder that holds your train/ and "
                "test/ image folders (DATA_DIR/train/<class_name>/<image>.png)."
            )
        return ("folder", scan_folder(data_dir))
    root = resolve_data_dir(data_dir)
    if key in CLASSES_BY_NAME:
        rels = idx_relpaths(key)
        paths = tuple(str(fetch(root, rel, download=download)) for rel in rels)
        return ("idx", key, paths, tuple(CHECKSUMS[rel] for rel in rels))
    layout = _CIFAR[key]
    path = fetch(root, layout.relpath, download=download)
    return ("cifar", key, str(path), CHECKSUMS[layout.relpath])


# Small caches: an entry is up to a few hundred MB (CIFAR); clear_cache() frees them all.
@functools.lru_cache(maxsize=3)
def _decode(source: _Source) -> tuple[ImageDataset, ImageDataset | None, ImageDataset]:
    """``(train, official val or None, test)``; keyed on verified content, so safe to cache."""
    kind = source[0]
    if kind == "digits":
        train, test = load_digits_dataset()
        return train, None, test
    if kind == "folder":
        return read_folder(source[1])  # type: ignore[arg-type]
    if kind == "idx":
        _, name, paths, _ = source
        classes = CLASSES_BY_NAME[name]  # type: ignore[index]
        train = read_idx_pair(Path(paths[0]), Path(paths[1]), classes, name)  # type: ignore[arg-type]
        test = read_idx_pair(Path(paths[2]), Path(paths[3]), classes, name)  # type: ignore[arg-type]
        return train, None, test
    _, name, path, _ = source
    train, test = read_cifar_archive(Path(path), _CIFAR[name])  # type: ignore[index, arg-type]
    return train, None, test


@functools.lru_cache(maxsize=4)
def _split(source: _Source, val_fraction: float, split_seed: int, train_subset: int | None) -> DataSplits:
    full_train, given_val, test = _decode(source)
    n = len(full_train)
    if given_val is not None:
        train_ix = torch.arange(n, dtype=torch.int64)
        val = given_val
    else:
        n_val = round(val_fraction * n)
        if val_fraction > 0:
            # A positive fraction of a tiny set still gets one validation image, but training
            # always keeps at least one.
            n_val = min(max(n_val, 1), n - 1)
        train_ix, val_ix = stratified_split(full_train.labels, n_val, seeded_rng(split_seed, STREAM_VAL))
        val = full_train.subset(val_ix)
    # train_subset is a cap: asking for more images than exist keeps them all, so one quick-run
    # setting works across datasets of different sizes.
    if train_subset is not None and train_subset < len(train_ix):
        rng = seeded_rng(split_seed, STREAM_SUBSET)
        _, keep = stratified_split(full_train.labels[train_ix], train_subset, rng)
        train_ix = train_ix[keep]
    train = full_train if len(train_ix) == n else full_train.subset(train_ix)
    return DataSplits(train=train, val=val, test=test)
