"""The user's own images, one sub-folder per class.

Expected layout (file names are free; extensions ``.png .jpg .jpeg .bmp``, any case)::

    data_dir/
      train/<class_name>/*.png     required; the class names are the train sub-folder names
      test/<class_name>/*.png      required; only classes that exist under train/
      val/<class_name>/*.png       optional; used as the validation split instead of carving one

Classes are numbered in sorted order of their folder names. Files are searched recursively
inside each class folder, in sorted order, so the dataset is identical on every file system.
Hidden files and folders (leading ``.``) and other extensions are ignored.

All images must have the same width and height (the library does no resizing: a silently
resized image is a different experiment). They are decoded with Pillow and converted to ``"L"``
(one channel) if every image is grey-scale, otherwise all to ``"RGB"`` (alpha is dropped).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .dataset import ImageDataset
from .errors import DataError
from .registry import DatasetFamily, register_dataset

__all__ = ["IMAGE_EXTENSIONS", "FolderScan", "scan_folder", "read_folder"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_SPLITS = ("train", "val", "test")

_LAYOUT = (
    "The expected layout is DATA_DIR/train/<class_name>/<image>.png and "
    "DATA_DIR/test/<class_name>/<image>.png (optionally DATA_DIR/val/<class_name>/...), with "
    f"images ending in {', '.join(IMAGE_EXTENSIONS)}."
)


@dataclass(frozen=True)
class FolderScan:
    """What is on disk: per split, ``(path, label, size_bytes, mtime_ns)`` for every image.

    Hashable, and it changes whenever a file is added, removed, renamed or rewritten, so it
    doubles as the key of the in-process decode cache.
    """

    root: str
    classes: tuple[str, ...]
    splits: tuple[tuple[str, tuple[tuple[str, int, int, int], ...]], ...]


def scan_folder(data_dir: str | os.PathLike) -> FolderScan:
    """List the images of a folder dataset and check the layout (nothing is decoded).

    Raises:
        DataError explaining the expected layout if ``train/`` or ``test/`` is missing or
        empty, a class folder is empty, an image lies outside any class folder, or ``val/`` or
        ``test/`` has a class that ``train/`` lacks.
    """
    root = Path(data_dir).expanduser().absolute()
    train_dir = root / "train"
    if not train_dir.is_dir():
        what = "does not exist" if not root.exists() else "has no train/ folder"
        raise DataError(f"Folder dataset {root} {what}. {_LAYOUT}")
    classes = tuple(sorted(d.name for d in _visible(train_dir) if d.is_dir()))
    if not classes:
        raise DataError(f"Folder dataset {root}: {train_dir} contains no class folders. {_LAYOUT}")
    index = {c: k for k, c in enumerate(classes)}

    splits = []
    for split in _SPLITS:
        split_dir = root / split
        if not split_dir.is_dir():
            if split == "val":
                continue
            raise DataError(f"Folder dataset {root} has no {split}/ folder. {_LAYOUT}")
        entries = []
        stray = [p for p in _visible(split_dir) if p.is_file() and _is_image(p)]
        if stray:
            raise DataError(
                f"Folder dataset {root}: image {stray[0]} is directly inside {split}/, but each "
                f"image must be inside its class folder. {_LAYOUT}"
            )
        for class_dir in sorted(d for d in _visible(split_dir) if d.is_dir()):
            if class_dir.name not in index:
                raise DataError(
                    f"Folder dataset {root}: class folder {class_dir} has no counterpart in "
                    f"train/ (train classes: {', '.join(classes)}). Every class must have "
                    f"training images; rename or remove the folder."
                )
            images = _images_in(class_dir)
            if not images:
                raise DataError(
                    f"Folder dataset {root}: class folder {class_dir} contains no images "
                    f"(extensions {', '.join(IMAGE_EXTENSIONS)}). Add images or remove the folder."
                )
            for path in images:
                st = path.stat()
                entries.append((str(path), index[class_dir.name], st.st_size, st.st_mtime_ns))
        if not entries:
            raise DataError(f"Folder dataset {root}: {split_dir} contains no class folders. {_LAYOUT}")
        splits.append((split, tuple(entries)))
    return FolderScan(root=str(root), classes=classes, splits=tuple(splits))


def read_folder(scan: FolderScan) -> tuple[ImageDataset, ImageDataset | None, ImageDataset]:
    """Decode ``(train, val or None, test)`` of a scanned folder dataset.

    Images are uint8 ``[N, C, H, W]`` with C = 1 (all grey) or 3; labels int64 ``[N]``.

    Raises:
        DataError naming the file if an image cannot be read, or if its size differs from the
        first training image's (with both sizes).
    """
    from PIL import Image  # imported lazily: only folder datasets need Pillow

    all_files = [e for _, entries in scan.splits for e in entries]
    # Pass 1 reads only headers (Pillow opens lazily): fails fast on a bad size before decoding
    # thousands of images, and decides the channel count for the whole dataset at once.
    expected: tuple[int, int] | None = None
    first = ""
    grey = True
    for path, *_ in all_files:
        try:
            with Image.open(path) as img:
                size, mode = img.size, img.mode
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise _unreadable(path, exc) from exc
        if expected is None:
            expected, first = size, path
        elif size != expected:
            raise DataError(
                f"Folder dataset image {path} is {size[0]}x{size[1]} pixels (width x height) but "
                f"the dataset's images are {expected[0]}x{expected[1]} (the size of {first}). All "
                f"images must have the same size: resize or remove this one."
            )
        grey = grey and mode in _GREY_MODES
    assert expected is not None  # scan_folder guarantees at least one training image
    mode = "L" if grey else "RGB"
    width, height = expected

    out = {}
    for split, entries in scan.splits:
        pixels = np.empty((len(entries), height, width, 1 if grey else 3), dtype=np.uint8)
        for i, (path, *_) in enumerate(entries):
            try:
                with Image.open(path) as img:
                    array = np.asarray(img.convert(mode), dtype=np.uint8)
            except (OSError, ValueError, Image.DecompressionBombError) as exc:
                raise _unreadable(path, exc) from exc
            if array.shape[:2] != (height, width):  # pragma: no cover - e.g. file changed mid-read
                raise DataError(f"Folder dataset image {path} changed size while being read; retry.")
            pixels[i] = array.reshape(height, width, -1)
        labels = np.fromiter((label for _, label, _, _ in entries), dtype=np.int64, count=len(entries))
        out[split] = ImageDataset(
            images=torch.from_numpy(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))),
            labels=torch.from_numpy(labels),
            classes=scan.classes,
            name="folder",
        )
    return out["train"], out.get("val"), out["test"]


def _visible(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if not p.name.startswith("."))


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _images_in(class_dir: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=True):
        # Prune hidden folders in place so os.walk does not descend into them; sort for a
        # file-system independent order.
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if not name.startswith(".") and _is_image(path):
                found.append(path)
    return found


def _unreadable(path: str, exc: BaseException) -> DataError:
    return DataError(
        f"Folder dataset image {path} could not be read as an image ({exc}); it is damaged or "
        f"not an image despite its extension. Replace or remove it."
    )


def _locate(data_dir, download: bool) -> tuple:
    if data_dir is None or str(data_dir) == "":
        raise DataError(
            "The 'folder' dataset needs data_dir: the folder that holds your train/ and "
            "test/ image folders (DATA_DIR/train/<class_name>/<image>.png)."
        )
    return (scan_folder(data_dir),)


def _decode(source) -> tuple[ImageDataset, ImageDataset | None, ImageDataset]:
    return read_folder(source[0])


register_dataset(
    DatasetFamily(
        "folder",
        _locate,
        _decode,
        description="your own images: ROOT/train/<class>/*.png, ROOT/test/<class>/... (optional ROOT/val/)",
        data_dir_is_root=True,
    )
)
