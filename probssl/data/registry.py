"""The dataset registry, :func:`load_dataset`, and the in-process cache behind it.

Each dataset family registers itself from its own module with :func:`register_dataset` (name, files and
checksums, mirrors, a ``locate`` and a ``decode`` function); ``probssl.data`` imports every module of the
package, and a user's dataset is one module that calls :func:`register_dataset` too.
"""

from __future__ import annotations

import functools
import numbers
import operator
import os
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import torch

from probssl.config import Config, DataConfig, did_you_mean, register_validator

from .dataset import DataSplits, ImageDataset
from .errors import DataError
from .lazy import take_rows
from .splits import STREAM_SUBSET, STREAM_VAL, seeded_rng, stratified_split

__all__ = [
    "DATASETS",
    "DatasetFamily",
    "canonical_name",
    "clear_cache",
    "dataset_family",
    "list_datasets",
    "load_dataset",
    "load_splits",
    "register_dataset",
    "to_float_images",
    "unregister_dataset",
]

# (train, the dataset's own validation split or None, test)
Decoded = tuple[ImageDataset, "ImageDataset | None", ImageDataset]


@dataclass(frozen=True)
class DatasetFamily:
    """One dataset, as its module registers it (:func:`register_dataset`).

    locate(data_dir, download) -> source: find (and, if allowed, download) the files and verify them; cheap,
        run on every load. ``source`` is hashable and identifies the verified content (e.g. paths + MD5s),
        so decoding can be cached on it.
    decode(source) -> (train, val or None, test): read the files into :class:`ImageDataset` splits.
    files: paths under the data root with their official MD5s (documentation and error messages);
    urls: where missing files are downloaded from; aliases: other spellings of the name;
    data_dir_is_root: ``data_dir`` is this dataset's own folder (``folder``), not a root of many datasets.
    """

    name: str
    locate: Callable[[str | os.PathLike | None, bool], Hashable]
    decode: Callable[[Hashable], Decoded]
    description: str = ""
    aliases: tuple[str, ...] = ()
    files: tuple[tuple[str, str], ...] = ()
    urls: tuple[str, ...] = ()
    # data_dir is the dataset's own folder (a user's images), not a root holding many datasets: another
    # dataset loaded beside it (an OOD set) must not look for its files there.
    data_dir_is_root: bool = False
    # Names of DataConfig fields the family takes as keyword options of ``locate`` (e.g. folder: image_size).
    options: tuple[str, ...] = ()


_FAMILIES: dict[str, DatasetFamily] = {}
_ALIASES: dict[str, str] = {}


def register_dataset(family: DatasetFamily, *, overwrite: bool = False) -> DatasetFamily:
    """Make ``load_dataset(family.name)`` (and ``data.name: NAME`` in a config) load ``family``."""
    key = _normalise(family.name)
    if key != family.name:
        raise ValueError(f"dataset names are lower-case with '-' (got {family.name!r}; use {key!r})")
    if key in _FAMILIES and not overwrite:
        raise ValueError(f"dataset {key!r} is already registered")
    _FAMILIES[key] = family
    for alias in family.aliases:
        _ALIASES[_normalise(alias)] = key
    return family


def unregister_dataset(name: str) -> None:
    """Remove a registered dataset (for tests that register temporary ones)."""
    family = _FAMILIES.pop(canonical_name(name))
    for alias in family.aliases:
        _ALIASES.pop(_normalise(alias), None)
    clear_cache()


def list_datasets() -> list[str]:
    """Names of every registered dataset, in registration order."""
    return list(_FAMILIES)


def dataset_family(name: str) -> DatasetFamily:
    return _FAMILIES[canonical_name(name)]


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def canonical_name(name: str) -> str:
    """The registered name that ``name`` refers to (case, ``_`` and aliases forgiven).

    Raises:
        DataError listing the valid names, with a "did you mean" suggestion when one is close.
    """
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a string, got {type(name).__name__}")
    key = _normalise(name)
    key = _ALIASES.get(key, key)
    if key in _FAMILIES:
        return key
    hint = did_you_mean(key, [*_FAMILIES, *_ALIASES])
    for alias, target in _ALIASES.items():
        hint = hint.replace(f"'{alias}'", f"'{target}'")
    raise DataError(f"Unknown dataset {name!r}.{hint} Valid names: {', '.join(_FAMILIES)}.")


@register_validator
def _check_dataset_name(config: Config) -> list[str]:
    try:
        canonical_name(config.data.name)
    except DataError as err:
        return [f"data.name: {err}".rstrip(".")]
    return []


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    download: bool = True,
    train_subset: int | None = None,
    **options,
) -> DataSplits:
    """Load a dataset as train / val / test :class:`ImageDataset` splits.

    Args:
        name: a registered dataset (:func:`list_datasets`).
        data_dir: root of the data directory (see :func:`resolve_data_dir`; ``mnist`` is read
            from ``data_dir/mnist/`` and so on). For ``"folder"`` it is instead the folder that
            holds ``train/`` and ``test/`` and is required (``"unlabelled-folder"``: the folder of the
            images; ``"manifest"``: the CSV/TXT file list). Ignored for ``"digits"``.
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
        :class:`DataSplits` with images uint8 ``[N, C, H, W]`` and labels int64 ``[N]`` (all ``UNLABELLED``,
        classes ``()``, for unlabelled images: ``splits.labelled`` is False). MD5s of
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
    family = _FAMILIES[key]
    unknown = sorted(set(options) - set(family.options))
    if unknown:
        raise DataError(
            f"dataset {key!r} takes no option {', '.join(unknown)} (its options: {', '.join(family.options) or 'none'})"
        )
    source = family.locate(data_dir, download, **options)
    return _split(key, source, val_fraction, split_seed, train_subset)


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


# Small caches: an entry is up to a few hundred MB (CIFAR); clear_cache() frees them all.
@functools.lru_cache(maxsize=3)
def _decode(name: str, source: Hashable) -> Decoded:
    """``(train, official val or None, test)``; keyed on verified content, so safe to cache."""
    return _FAMILIES[name].decode(source)


@functools.lru_cache(maxsize=4)
def _split(name: str, source: Hashable, val_fraction: float, split_seed: int, train_subset: int | None) -> DataSplits:
    full_train, given_val, test = _decode(name, source)
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


def keep_classes(dataset: ImageDataset, classes: list[int] | tuple[int, ...], keep: bool = True) -> ImageDataset:
    """The images of ``classes`` (``keep=False``: of every other class), relabelled 0..K-1 in ascending order of
    the original label, with the class names to match."""
    if not dataset.labelled:
        raise DataError(f"data.classes needs labelled images, but {dataset.name} has no labels; remove data.classes.")
    chosen = sorted(set(classes)) if keep else [c for c in range(len(dataset.classes)) if c not in set(classes)]
    bad = [c for c in chosen if not 0 <= c < len(dataset.classes)]
    if bad:
        raise DataError(f"data.classes {bad} do not exist in {dataset.name} (labels 0..{len(dataset.classes) - 1}).")
    lookup = torch.full((len(dataset.classes),), -1, dtype=torch.int64)
    lookup[chosen] = torch.arange(len(chosen))
    rows = torch.nonzero(lookup[dataset.labels] >= 0).flatten()
    return ImageDataset(
        take_rows(dataset.images, rows),
        lookup[dataset.labels[rows]],
        tuple(dataset.classes[c] for c in chosen),
        dataset.name,
    )


def load_splits(data: DataConfig | Config) -> DataSplits:
    """The splits a config's ``data`` section describes (a whole Config is accepted for its ``data``); with
    ``data.classes`` every split keeps only those classes (relabelled 0..K-1), e.g. to hold classes out."""
    data = data.data if isinstance(data, Config) else data
    splits = _load_configured(data)
    if data.classes:
        return DataSplits(*(keep_classes(s, data.classes) for s in (splits.train, splits.val, splits.test)))
    return splits


# DataConfig fields that mean something for one dataset only: set for another, they are an error, not ignored.
DATASET_SPECIFIC = {"attribute": "celeba", "fold": "stl10"}


def _load_configured(data: DataConfig) -> DataSplits:
    family = dataset_family(data.name)
    for key, owner in DATASET_SPECIFIC.items():
        if getattr(data, key) is not None and key not in family.options:
            raise DataError(f"data.{key} is an option of {owner}; dataset {family.name!r} takes none: remove it.")
    options = {key: getattr(data, key) for key in family.options}
    return load_dataset(
        data.name,
        data.data_dir,
        val_fraction=data.val_fraction,
        split_seed=data.split_seed,
        download=data.download,
        train_subset=data.train_subset,
        **options,
    )


def to_float_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 [..., C, H, W] -> float32 in [0, 1] (float input is returned as float32 unchanged)."""
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()


# The built-in datasets (registered by their modules); list_datasets() also names users' registrations.
DATASETS: tuple[str, ...] = (
    "digits",
    "mnist",
    "fashion-mnist",
    "cifar10",
    "cifar100",
    "folder",
    "unlabelled-folder",
    "manifest",
    "shards",
    "svhn",
    "stl10",
    "stl10-unlabeled",
    "tiny-imagenet",
    "caltech256",
    "celeba",
    "imagenet",
)
