"""Caltech-256 (Griffin, Holub & Perona, Caltech tech. report 2007): ``data.name: caltech256``.

Official archive ``256_ObjectCategories.tar`` (uncompressed; https://data.caltech.edu/records/nyy15-4j048), laid out
as ``256_ObjectCategories/<NNN>.<name>/<NNN>_<KKKK>.jpg``: 256 object categories of 80 to 827 images each, plus
``257.clutter`` (background images, not an object category: left out, as the field does). Classes are the
categories in the order of their numbers (``001.ak47`` is label 0, named ``ak47``).

There is no official train/test split. This one is fixed and seeded, as the field uses (the Caltech-256 paper's
protocol trains on up to 60 images per class and tests on the rest; e.g. Kornblith et al., CVPR 2019, use 60):
in each class (images sorted by file name) a ``numpy.random.RandomState([0, 2])`` permutation, drawn class after
class in label order, puts ``TRAIN_PER_CLASS`` = 60 images in train and the rest in test. It never depends on
``data.split_seed``; the validation split is carved from train by ``data.val_fraction``.

Files in ``root/caltech256/``: the extracted ``256_ObjectCategories/`` folder is read when present (no MD5 for
single images: the layout is checked); otherwise the archive ``256_ObjectCategories.tar`` is downloaded when
missing (MD5-checked, atomic; the record's link may redirect to a Google Drive page that urllib cannot follow,
then the error says to download it by hand) and read in place, each image from its byte range (nothing is
extracted). The images have many sizes: ``data.image_size`` null means ``DEFAULT_IMAGE_SIZE`` = 224 (with
``data.resize``, default short side scaled and centre-cropped). Decoding is a folder dataset's
(:mod:`probssl.data.folder`; grey-scale images become RGB) and streams when the set would not fit in memory.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from .errors import DataError
from .folder import DECODE_OPTIONS, IMAGE_EXTENSIONS, FolderScan, file_source, read_source
from .members import MemberRef
from .official import fetch_official, safe_member_name
from .paths import resolve_data_dir
from .registry import DatasetFamily, register_dataset
from .splits import seeded_rng

__all__ = ["CALTECH256_MD5", "CALTECH256_URL", "TRAIN_PER_CLASS", "scan_caltech256", "split_per_class"]

CALTECH256_URL = "https://data.caltech.edu/records/nyy15-4j048/files/256_ObjectCategories.tar?download=1"
ARCHIVE = "caltech256/256_ObjectCategories.tar"
TOP = "256_ObjectCategories"
# MD5 of 256_ObjectCategories.tar as torchvision checks it (torchvision/datasets/caltech.py, Caltech256.download).
# Looked up at call time, so tests can substitute a small archive.
CALTECH256_MD5: dict[str, str] = {ARCHIVE: "67b4f42ca05d46448c6bb8ecd2220f6d"}
CLUTTER = "257.clutter"
TRAIN_PER_CLASS = 60
DEFAULT_IMAGE_SIZE = 224
SPLIT_SEED, SPLIT_STREAM = 0, 2
_FIX = (
    f"It is not the official Caltech-256: replace it with {TOP}.tar from https://data.caltech.edu/records/nyy15-4j048."
)


def split_per_class(
    by_class: list[list], train_per_class: int | None = None, names: list[str] | None = None
) -> tuple[list, list]:
    """``(train, test)`` lists of ``(item, label)``: per class (in label order) a seeded permutation of its items
    puts ``train_per_class`` (None: ``TRAIN_PER_CLASS``) in train and the rest in test.

    Raises:
        DataError if a class has no more than ``train_per_class`` items (it would have no test image).
    """
    train_per_class = TRAIN_PER_CLASS if train_per_class is None else train_per_class
    rng = seeded_rng(SPLIT_SEED, SPLIT_STREAM)
    train, test = [], []
    for label, items in enumerate(by_class):
        if len(items) <= train_per_class:
            raise DataError(
                f"Caltech-256 class {names[label] if names else label} has {len(items)} images, but the split puts {train_per_class} of each "
                f"class in train and needs at least one more for test. {_FIX}"
            )
        order = rng.permutation(len(items))
        train += [(items[i], label) for i in sorted(order[:train_per_class])]
        test += [(items[i], label) for i in sorted(order[train_per_class:])]
    return train, test


def scan_caltech256(found: dict[str, list], where: str, train_per_class: int | None = None) -> FolderScan:
    """The split scan of ``found``: category folder name -> ``[(path or MemberRef, size, mtime_ns)]`` by file name.

    Raises:
        DataError naming ``where`` if there are no categories, a category has too few images, or a folder name is
        not ``NNN.name``.
    """
    folders = sorted(f for f in found if f != CLUTTER)
    if not folders:
        raise DataError(f"Caltech-256 {where} has no category folders {TOP}/NNN.name/. {_FIX}")
    bad = [f for f in folders if not (f.partition(".")[0].isdigit() and f.partition(".")[2])]
    if bad:
        raise DataError(f"Caltech-256 {where}: folder {bad[0]!r} is not a category (NNN.name). {_FIX}")
    train, test = split_per_class([found[f] for f in folders], train_per_class, folders)
    classes = tuple(f.partition(".")[2] for f in folders)
    entries = {
        s: tuple((p, label, size, mtime) for (p, size, mtime), label in items)
        for s, items in (("train", train), ("test", test))
    }
    return FolderScan(str(where), classes, (("train", entries["train"]), ("test", entries["test"])), "caltech256")


def _from_folder(folder: Path) -> dict[str, list]:
    found = {}
    for category in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in category.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        found[category.name] = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return found


def _from_tar(archive: Path) -> dict[str, list]:
    """Category -> its images as byte ranges of the tar (member headers only are read)."""
    st = archive.stat()
    found: dict[str, list] = {}
    try:
        with tarfile.open(archive, "r:") as tar:
            for member in tar:
                parts = safe_member_name(member.name, archive).split("/")
                if (
                    member.isfile()
                    and len(parts) == 3
                    and parts[0] == TOP
                    and Path(parts[2]).suffix.lower() in IMAGE_EXTENSIONS
                ):
                    ref = MemberRef(archive, member.name, member.offset_data, member.size)
                    found.setdefault(parts[1], []).append((parts[2], ref))
    except (tarfile.TarError, OSError) as exc:
        raise DataError(f"Caltech-256 archive {archive} could not be read as a tar file ({exc}). {_FIX}") from exc
    return {c: [(ref, st.st_size, st.st_mtime_ns) for _, ref in sorted(items)] for c, items in found.items()}


def _locate(data_dir, download: bool, image_size=None, **options) -> tuple:
    root = resolve_data_dir(data_dir)
    folder = root / "caltech256" / TOP
    if folder.is_dir():
        scan = scan_caltech256(_from_folder(folder), str(folder))
    else:
        archive = fetch_official(root, ARCHIVE, CALTECH256_MD5[ARCHIVE], (CALTECH256_URL,), download=download)
        scan = scan_caltech256(_from_tar(archive), str(archive))
    return file_source(scan, image_size=image_size or DEFAULT_IMAGE_SIZE, **options)


register_dataset(
    DatasetFamily(
        "caltech256",
        _locate,
        read_source,
        description="Caltech-256, the official tar read in place: 256 categories (clutter left out), a fixed seeded "
        f"split of {TRAIN_PER_CLASS} train images per class and the rest test; resized to data.image_size (224)",
        aliases=("caltech-256",),
        files=((ARCHIVE, CALTECH256_MD5[ARCHIVE]),),
        urls=(CALTECH256_URL,),
        options=DECODE_OPTIONS,
    )
)
