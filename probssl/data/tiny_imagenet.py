"""Tiny-ImageNet-200 (the Stanford CS231n release): ``data.name: tiny-imagenet``.

Official archive ``tiny-imagenet-200.zip`` (http://cs231n.stanford.edu/tiny-imagenet-200.zip), 200 classes of
64x64 JPEGs, laid out as::

    tiny-imagenet-200/wnids.txt                         the 200 WordNet ids, one a line
    tiny-imagenet-200/words.txt                         WordNet id <TAB> names, for all of WordNet (not used)
    tiny-imagenet-200/train/<wnid>/images/<wnid>_<k>.JPEG   500 training images per class
    tiny-imagenet-200/train/<wnid>/<wnid>_boxes.txt     bounding boxes (not used)
    tiny-imagenet-200/val/images/val_<k>.JPEG           10,000 validation images, 50 per class
    tiny-imagenet-200/val/val_annotations.txt           file <TAB> wnid <TAB> x0 <TAB> y0 <TAB> x1 <TAB> y1
    tiny-imagenet-200/test/images/test_<k>.JPEG         10,000 test images WITHOUT labels (not used)

As the field does, the labelled ``val`` images are the test split (the official test labels were never
released); the validation split is carved from train by ``data.val_fraction``. Classes are the WordNet ids in
sorted order (as an image-folder reader numbers them).

The archive (``root/tiny-imagenet/tiny-imagenet-200.zip``) is downloaded when missing (MD5-checked, atomic) and read
in place: nothing is extracted, each image is read from its byte range when decoded. An already extracted
``root/tiny-imagenet/tiny-imagenet-200/`` folder is read instead when present (no MD5 for single images: its
structure is checked). Images decode as a folder dataset's (:mod:`probssl.data.folder`: the few grey-scale
JPEGs become RGB, ``data.image_size`` / ``data.resize`` apply) and are streamed when they would not fit in memory
(``data.in_memory``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .errors import DataError
from .folder import DECODE_OPTIONS, IMAGE_EXTENSIONS, FolderScan, file_source, read_source
from .official import fetch_official, zip_members
from .paths import resolve_data_dir
from .registry import DatasetFamily, register_dataset

__all__ = ["TINY_IMAGENET_MD5", "TINY_IMAGENET_URL", "scan_tiny_imagenet"]

TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
ARCHIVE = "tiny-imagenet/tiny-imagenet-200.zip"
TOP = "tiny-imagenet-200"
# MD5 of tiny-imagenet-200.zip as ContinualAI/avalanche checks it (avalanche/benchmarks/datasets/tiny_imagenet/
# tiny_imagenet.py, TinyImagenet.md5) and many independent loaders do. Looked up at call time (tests substitute it).
TINY_IMAGENET_MD5: dict[str, str] = {ARCHIVE: "90528d7ca1a48142e341f4ef8d21d0de"}
_FIX = f"It is not the official Tiny-ImageNet-200: replace it with {TINY_IMAGENET_URL}."


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def scan_tiny_imagenet(
    members: dict[str, object], where: str, stamp: Callable[[object], tuple[int, int]]
) -> FolderScan:
    """The train and test (official val) entries of a Tiny-ImageNet tree, from its member list.

    ``members``: relative name (``tiny-imagenet-200/...``) -> a file path, or a
    :class:`~probssl.data.official.ZipMemberRef`. ``stamp(path) -> (size, mtime_ns)`` recorded with every entry
    (the decode cache's key: the file's own, or the archive's).

    Raises:
        DataError naming ``where`` and the file if wnids.txt or val_annotations.txt is missing or malformed, a
        class has no training images, or an annotated validation image is missing.
    """
    wnids = sorted({w for w in _text(members, f"{TOP}/wnids.txt", where).split() if w})
    if not wnids:
        raise DataError(f"Tiny-ImageNet {where}: {TOP}/wnids.txt lists no classes. {_FIX}")
    index = {w: k for k, w in enumerate(wnids)}
    train = []
    for wnid in wnids:
        prefix = f"{TOP}/train/{wnid}/images/"
        names = sorted(n for n in members if n.startswith(prefix) and _is_image(n))
        if not names:
            raise DataError(f"Tiny-ImageNet {where}: class {wnid} has no images in {prefix}. {_FIX}")
        train += [(members[n], index[wnid], *stamp(members[n])) for n in names]
    test = []
    annotations = f"{TOP}/val/val_annotations.txt"
    for number, line in enumerate(_text(members, annotations, where).splitlines(), 1):
        fields = line.split("\t")
        if not line.strip():
            continue
        if len(fields) < 2 or fields[1].strip() not in index:
            raise DataError(
                f"Tiny-ImageNet {where}: line {number} of {annotations} should be FILE<TAB>WNID<TAB>box with a "
                f"WordNet id of wnids.txt, got {line[:80]!r}. {_FIX}"
            )
        name = f"{TOP}/val/images/{fields[0].strip()}"
        if name not in members:
            raise DataError(f"Tiny-ImageNet {where}: {name} (line {number} of {annotations}) is missing. {_FIX}")
        test.append((members[name], index[fields[1].strip()], *stamp(members[name])))
    if not test:
        raise DataError(f"Tiny-ImageNet {where}: {annotations} lists no images. {_FIX}")
    return FolderScan(str(where), tuple(wnids), (("train", tuple(train)), ("test", tuple(test))), "tiny-imagenet")


def _text(members: dict[str, object], name: str, where: str) -> str:
    if name not in members:
        raise DataError(f"Tiny-ImageNet {where} has no {name}. {_FIX}")
    ref = members[name]
    try:
        data = ref.read() if hasattr(ref, "read") else Path(str(ref)).read_bytes()
    except OSError as exc:
        raise DataError(f"Tiny-ImageNet {where}: {name} could not be read ({exc}). {_FIX}") from exc
    return data.decode("utf-8", "replace")


def _folder_members(folder: Path) -> dict[str, object]:
    """Relative names -> paths of every file below an extracted ``tiny-imagenet-200/`` (links are not followed)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            path = Path(dirpath) / name
            found[f"{TOP}/{path.relative_to(folder).as_posix()}"] = str(path)
    return found


def _file_stamp(path) -> tuple[int, int]:
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns)


def _locate(data_dir, download: bool, **options) -> tuple:
    root = resolve_data_dir(data_dir)
    folder = root / "tiny-imagenet" / TOP
    if folder.is_dir():
        scan = scan_tiny_imagenet(_folder_members(folder), str(folder), _file_stamp)
    else:
        md5 = TINY_IMAGENET_MD5[ARCHIVE]
        archive = fetch_official(root, ARCHIVE, md5, (TINY_IMAGENET_URL,), download=download)
        st = archive.stat()
        scan = scan_tiny_imagenet(zip_members(archive), str(archive), lambda _: (st.st_size, st.st_mtime_ns))
    return file_source(scan, **options)


register_dataset(
    DatasetFamily(
        "tiny-imagenet",
        _locate,
        read_source,
        description="Tiny-ImageNet-200, the official zip read in place: 100,000 train, 10,000 val (as test) images, "
        "200 classes, 64x64",
        aliases=("tiny-imagenet-200", "tinyimagenet"),
        files=((ARCHIVE, TINY_IMAGENET_MD5[ARCHIVE]),),
        urls=(TINY_IMAGENET_URL,),
        options=DECODE_OPTIONS,
    )
)
