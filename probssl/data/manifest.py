"""A file list as a dataset: ``data.name: manifest`` with ``data.data_dir`` the list file.

Formats, by the file's extension:

* ``.csv``: a header row naming the columns, then one image per row. ``path`` is required; ``label`` (class
  names) makes the set labelled; ``split`` (``train`` | ``val`` | ``test``) assigns rows to splits. Other columns
  are ignored (metadata may stay in the file). Quoting as Python's ``csv`` module reads it; a UTF-8 byte-order
  mark (Excel) is accepted. Example::

      path,label,split
      cats/1.jpg,cat,train
      /data/dogs/7.png,dog,test

* anything else (``.txt``, ``.lst``): one path per line, unlabelled, no splits; blank lines and lines starting
  with ``#`` are skipped. Paths keep inner spaces.

Relative paths are resolved against the manifest's folder (``~`` is expanded). Each file is read once: a row whose
resolved path (symlinks followed) an earlier row already listed is skipped when label and split agree, and is an
error naming both lines when they do not (one image, two labels or two splits). A missing file is an error naming
its line. Classes are numbered in sorted order of their names (numerically when every name is an integer); a
class in ``val`` or ``test`` must have training rows. Without a ``split`` column (or without test rows) the test
split is carved by ``data.test_fraction`` with a fixed seed, stratified by label; without val rows the
validation split is carved by ``data.val_fraction``. Decoding is the folder dataset's (:func:`~probssl.data.folder.
read_folder`: ``data.image_size``, ``data.resize``, 16-bit, alpha, the decompression-bomb limit, streaming).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from .dataset import UNLABELLED
from .errors import DataError
from .folder import DECODE_OPTIONS, FolderScan, carve_test, file_source, read_source
from .registry import DatasetFamily, register_dataset

__all__ = ["ManifestRow", "read_manifest_rows", "scan_manifest"]

SPLIT_NAMES = ("train", "val", "test")
_FORMAT = (
    "A CSV manifest starts with a header naming its columns: path (required), label and split (optional); "
    "any other file is one image path per line."
)

# (line number, path as written, label name or None, split or None)
ManifestRow = tuple[int, str, "str | None", "str | None"]


def read_manifest_rows(manifest: Path) -> list[ManifestRow]:
    """The rows of a manifest file as written (nothing resolved or checked against the disk).

    Raises:
        DataError naming the file and line for a CSV without a ``path`` column, a row without a path, an empty
        label in a labelled manifest, or a split other than train / val / test.
    """
    try:
        with open(manifest, newline="", encoding="utf-8-sig") as handle:
            if manifest.suffix.lower() == ".csv":
                return _csv_rows(manifest, handle)
            return [
                (number, line.strip(), None, None)
                for number, line in enumerate(handle, start=1)
                if line.strip() and not line.lstrip().startswith("#")
            ]
    except UnicodeDecodeError as exc:
        raise DataError(f"Manifest {manifest} is not UTF-8 text ({exc}). Save it as UTF-8.") from exc


def _csv_rows(manifest: Path, handle) -> list[ManifestRow]:
    reader = csv.reader(handle)
    header = [name.strip().lower() for name in next(reader, [])]
    if "path" not in header:
        raise DataError(f"Manifest {manifest} line 1: no 'path' column in the header {header}. {_FORMAT}")
    column = {name: header.index(name) for name in ("path", "label", "split") if name in header}
    rows = []
    for cells in reader:
        number = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue  # a blank line
        value = {name: (cells[i].strip() if i < len(cells) else "") for name, i in column.items()}
        if not value["path"]:
            raise DataError(f"Manifest {manifest} line {number}: the path is empty. {_FORMAT}")
        label, split = value.get("label"), value.get("split")
        if label == "":
            raise DataError(
                f"Manifest {manifest} line {number}: the label is empty, but the manifest has a label column, so "
                "every row needs one. Fill it in, or drop the label column for unlabelled images."
            )
        if split is not None and split.lower() not in SPLIT_NAMES:
            raise DataError(
                f"Manifest {manifest} line {number}: split {split!r} is not one of {', '.join(SPLIT_NAMES)}."
            )
        rows.append((number, value["path"], label, split.lower() if split is not None else None))
    return rows


def _resolve(manifest: Path, number: int, written: str) -> tuple[str, str]:
    """(the path to open, its real path) of a row, or a DataError naming the line if the file is missing."""
    path = Path(os.path.expanduser(written))
    path = path if path.is_absolute() else manifest.parent / path
    real = os.path.realpath(path)
    if not os.path.isfile(real):
        what = "is not a file" if os.path.exists(real) else "does not exist"
        raise DataError(
            f"Manifest {manifest} line {number}: image {written!r} ({path}) {what}. Relative paths are resolved "
            f"against the manifest's folder {manifest.parent}; fix or remove the line."
        )
    return str(path), real


def _unique_rows(manifest: Path, rows: list[ManifestRow]) -> list[tuple[str, str | None, str]]:
    """``(path, label, split)`` per distinct real file, in manifest order; a repeat that agrees is dropped."""
    first: dict[str, tuple[int, str | None, str | None]] = {}
    out = []
    for number, written, label, split in rows:
        path, real = _resolve(manifest, number, written)
        if real in first:
            line, label0, split0 = first[real]
            if (label0, split0) != (label, split):
                raise DataError(
                    f"Manifest {manifest} lines {line} and {number} list the same image {real} with different "
                    f"labels or splits ({label0}/{split0} vs {label}/{split}). Keep one of the lines."
                )
            continue
        first[real] = (number, label, split)
        out.append((path, label, split or "train"))
    return out


def _class_order(names: set[str]) -> tuple[str, ...]:
    if names and all(name.lstrip("-").isdigit() for name in names):
        return tuple(sorted(names, key=int))  # "10" after "9"
    return tuple(sorted(names))


def scan_manifest(data_dir: str | os.PathLike, test_fraction: float = 0.1) -> FolderScan:
    """Read, resolve and check a manifest (the module docstring's rules) into a :class:`FolderScan`.

    Raises:
        DataError naming the manifest (and the line) for every problem: no such file, bad header or row,
        missing image, conflicting duplicate, a val/test class without training rows, no training rows.
    """
    manifest = Path(data_dir).expanduser().absolute()
    if not manifest.is_file():
        what = "is a folder, not a file list" if manifest.is_dir() else "does not exist"
        raise DataError(f"Manifest {manifest} {what}: set data.data_dir to your CSV or TXT file list. {_FORMAT}")
    rows = _unique_rows(manifest, read_manifest_rows(manifest))
    labelled = bool(rows) and rows[0][1] is not None
    train_names = {label for _, label, split in rows if split == "train"}
    classes = _class_order(train_names) if labelled else ()
    index = {name: k for k, name in enumerate(classes)}
    by_split: dict[str, list] = {split: [] for split in SPLIT_NAMES}
    for path, label, split in rows:
        if labelled and label not in index:
            raise DataError(
                f"Manifest {manifest}: class {label!r} ({path}, split {split}) has no training rows (train "
                f"classes: {', '.join(classes)}). Every class needs training images."
            )
        st = os.stat(path)
        by_split[split].append((path, index[label] if labelled else UNLABELLED, st.st_size, st.st_mtime_ns))
    if not by_split["train"]:
        raise DataError(f"Manifest {manifest} lists no training images. {_FORMAT}")
    if not by_split["test"]:
        by_split["train"], by_split["test"] = carve_test(
            tuple(by_split["train"]), test_fraction, f"Manifest {manifest}"
        )
    splits = tuple((split, tuple(entries)) for split, entries in by_split.items() if entries)
    return FolderScan(root=str(manifest), classes=classes, splits=splits, name="manifest")


def _locate(data_dir, download: bool, test_fraction: float = 0.1, **options) -> tuple:
    if data_dir is None or str(data_dir) == "":
        raise DataError(f"The 'manifest' dataset needs data_dir: the path of your CSV or TXT file list. {_FORMAT}")
    return file_source(scan_manifest(data_dir, test_fraction), **options)


register_dataset(
    DatasetFamily(
        "manifest",
        _locate,
        read_source,
        description="a CSV (path[,label][,split]) or TXT (one path per line) list of image files; paths relative "
        "to the list's folder",
        aliases=("file-list",),
        data_dir_is_root=True,
        options=("test_fraction", *DECODE_OPTIONS),
    )
)
