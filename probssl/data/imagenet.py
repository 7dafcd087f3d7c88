"""ImageNet-1k (ILSVRC 2012 classification) from its extracted folders: ``data.name: imagenet``, streamed from the
files (``data.in_memory``) since its 1.28 million images do not fit in memory at any useful size.

ImageNet has no public download (image-net.org requires an account), so the files are placed by hand under
``root/imagenet/`` in one of the two usual layouts:

* the ILSVRC (Kaggle "imagenet-object-localization-challenge") layout::

      root/imagenet/ILSVRC/Data/CLS-LOC/train/<wnid>/<wnid>_<k>.JPEG
      root/imagenet/ILSVRC/Data/CLS-LOC/val/ILSVRC2012_val_<k>.JPEG      flat, labelled by:
      root/imagenet/LOC_val_solution.csv      ImageId,PredictionString  (the first WordNet id is the label)

* the class-folder layout made from the official tars (``ILSVRC2012_img_train.tar``, MD5
  1d675b47d978889d74fa0da5fadfb00e; ``ILSVRC2012_img_val.tar``, MD5 29b22e2961454d5413ddabcf34fc5622, as torchvision
  lists them in torchvision/datasets/imagenet.py ARCHIVE_META) with the validation images moved into class folders
  (e.g. by the widely used ``valprep.sh``)::

      root/imagenet/train/<wnid>/*.JPEG
      root/imagenet/val/<wnid>/*.JPEG

The 50,000 labelled validation images are the test split, as the field reports on them; the validation split is
carved from train by ``data.val_fraction``. Classes are the WordNet ids in sorted order (the usual numbering; the
ids, unlike the human-readable names, are unique). The single images carry no checksum, so the layout is checked
instead: every class folder has images, every validation image is in a training class. The images have many sizes:
``data.image_size`` null means ``DEFAULT_IMAGE_SIZE`` = 224 (with ``data.resize``: short side scaled, centre crop).
Decoding is a folder dataset's (:mod:`probssl.data.folder`; the few grey-scale and CMYK JPEGs become RGB).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from .errors import DataError
from .folder import DECODE_OPTIONS, IMAGE_EXTENSIONS, FolderScan, file_source, read_source
from .paths import resolve_data_dir
from .registry import DatasetFamily, register_dataset

__all__ = ["IMAGENET_ARCHIVES", "find_imagenet", "scan_imagenet"]

# torchvision/datasets/imagenet.py ARCHIVE_META: the official archives (documentation; read after extraction).
IMAGENET_ARCHIVES: tuple[tuple[str, str], ...] = (
    ("imagenet/ILSVRC2012_img_train.tar", "1d675b47d978889d74fa0da5fadfb00e"),
    ("imagenet/ILSVRC2012_img_val.tar", "29b22e2961454d5413ddabcf34fc5622"),
    ("imagenet/ILSVRC2012_devkit_t12.tar.gz", "fa75699e90414af021442c21a62c3abf"),
)
DEFAULT_IMAGE_SIZE = 224
KAGGLE = Path("ILSVRC", "Data", "CLS-LOC")
SOLUTION = "LOC_val_solution.csv"
_LAYOUT = (
    "Place ImageNet (from https://image-net.org, an account is needed) as ROOT/imagenet/ILSVRC/Data/CLS-LOC/"
    "{train/<wnid>/*.JPEG, val/*.JPEG} with ROOT/imagenet/LOC_val_solution.csv, or as ROOT/imagenet/{train,val}/"
    "<wnid>/*.JPEG (the official tars extracted, validation images moved into class folders)."
)


def _images(directory: Path) -> list[tuple[str, int, int]]:
    """``(path, size, mtime_ns)`` of the images directly inside ``directory``, sorted by name."""
    with os.scandir(directory) as it:
        entries = sorted(
            (e for e in it if not e.name.startswith(".") and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS),
            key=lambda e: e.name,
        )
    return [(e.path, (st := e.stat()).st_size, st.st_mtime_ns) for e in entries if e.is_file()]


def _class_folders(split_dir: Path) -> list[Path]:
    return sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def find_imagenet(root: Path) -> tuple[Path, Path, Path | None]:
    """``(train dir, val dir, LOC_val_solution.csv or None)`` of the layout present under ``root/imagenet``.

    Raises:
        DataError with both layouts if neither is there.
    """
    base = root / "imagenet"
    kaggle = base / KAGGLE
    if (kaggle / "train").is_dir() and (kaggle / "val").is_dir():
        if _class_folders(kaggle / "val"):  # validation images already moved into class folders
            return kaggle / "train", kaggle / "val", None
        if not (base / SOLUTION).is_file():
            raise DataError(f"ImageNet in {kaggle}: the flat val/ needs its labels, {base / SOLUTION}. {_LAYOUT}")
        return kaggle / "train", kaggle / "val", base / SOLUTION
    if (base / "train").is_dir() and (base / "val").is_dir():
        return base / "train", base / "val", None
    raise DataError(f"ImageNet was not found in {base}. {_LAYOUT}")


def scan_imagenet(train_dir: Path, val_dir: Path, solution: Path | None) -> FolderScan:
    """The train and test (official val) scan; ``solution``: the CSV labelling a flat ``val_dir``, else class folders.

    Raises:
        DataError naming the folder, file or line for an empty class, a validation image of no training class, a
        malformed solution line, or a listed image that is missing.
    """
    classes = tuple(p.name for p in _class_folders(train_dir))
    if not classes:
        raise DataError(f"ImageNet: {train_dir} has no class folders <wnid>/. {_LAYOUT}")
    index = {c: k for k, c in enumerate(classes)}
    train = []
    for wnid in classes:
        images = _images(train_dir / wnid)
        if not images:
            raise DataError(f"ImageNet: class folder {train_dir / wnid} has no images. {_LAYOUT}")
        train += [(p, index[wnid], size, mtime) for p, size, mtime in images]
    test = _labelled_val(val_dir, solution, index)
    if not test:
        raise DataError(f"ImageNet: {val_dir} has no validation images. {_LAYOUT}")
    return FolderScan(str(train_dir.parent), classes, (("train", tuple(train)), ("test", tuple(test))), "imagenet")


def _labelled_val(val_dir: Path, solution: Path | None, index: dict[str, int]) -> list:
    if solution is None:  # class folders
        test = []
        for folder in _class_folders(val_dir):
            if folder.name not in index:
                raise DataError(f"ImageNet: validation folder {folder} is not a training class. {_LAYOUT}")
            test += [(p, index[folder.name], size, mtime) for p, size, mtime in _images(folder)]
        return test
    files = {Path(p).stem: (p, size, mtime) for p, size, mtime in _images(val_dir)}
    labelled = []
    with open(solution, newline="", encoding="utf-8") as f:
        for number, row in enumerate(csv.reader(f), 1):
            if number == 1 and row[:1] == ["ImageId"]:
                continue
            wnid = row[1].split()[0] if len(row) == 2 and row[1].split() else None
            if wnid not in index:
                raise DataError(
                    f"ImageNet: line {number} of {solution} should be ImageId,<wnid> <box>... with a training class, "
                    f"got {','.join(row)[:80]!r}."
                )
            if row[0] not in files:
                raise DataError(f"ImageNet: {val_dir / (row[0] + '.JPEG')} (line {number} of {solution}) is missing.")
            labelled.append((row[0], (files[row[0]][0], index[wnid], *files[row[0]][1:])))
    return [entry for _, entry in sorted(labelled)]  # in file-name order, as the folders


def _locate(data_dir, download: bool, image_size=None, **options) -> tuple:
    scan = scan_imagenet(*find_imagenet(resolve_data_dir(data_dir)))
    return file_source(scan, image_size=image_size or DEFAULT_IMAGE_SIZE, **options)


register_dataset(
    DatasetFamily(
        "imagenet",
        _locate,
        read_source,
        description="ImageNet-1k (ILSVRC 2012) from its extracted folders (placed by hand), streamed; val = test; "
        "resized to data.image_size (224)",
        aliases=("ilsvrc2012", "imagenet-1k"),
        files=IMAGENET_ARCHIVES,
        options=DECODE_OPTIONS,
    )
)
