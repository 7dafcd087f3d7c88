"""Images in tar shards (the WebDataset layout), for sets of millions of files: ``data.name: shards``.

Expected layout::

    data_dir/
      train-000000.tar  train-000001.tar ...   required; any names starting with train and ending in .tar
      test-000000.tar ...                      required
      val-*.tar                                optional; used as the validation split instead of carving one
      classes.txt                              optional; one class name per line (line k names label k)

Inside a shard, the files of one sample share a key (the member name up to the first dot of its base name,
as in WebDataset): ``KEY.jpg`` (or .png .jpeg .bmp .webp .tif .tiff: the image) and optionally ``KEY.cls``
(the label, a decimal integer). Shards with no ``.cls`` at all are an unlabelled set (pretraining only);
a shard mixing labelled and unlabelled samples is an error. Without ``classes.txt`` the classes are named
``0 .. K-1``. The webdataset package is not needed (it is not imported): shards are indexed once with the
standard library's ``tarfile`` (headers only) and each image is read from its byte range when decoded.

Images are decoded exactly as a folder dataset's (:mod:`probssl.data.folder`: modes, 16-bit, alpha,
``data.image_size`` / ``data.resize``, ``data.max_image_pixels``) and, like a folder, streamed from the shards
when they would not fit in memory (``data.in_memory``). Only regular members are read (links are ignored);
nothing is extracted.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from .dataset import UNLABELLED
from .errors import DataError
from .folder import DECODE_OPTIONS, IMAGE_EXTENSIONS, FolderScan, file_source, read_source
from .members import MemberRef
from .registry import DatasetFamily, register_dataset

__all__ = ["scan_shards"]

_SPLITS = ("train", "val", "test")
_LAYOUT = (
    "Expected DATA_DIR/train-*.tar and DATA_DIR/test-*.tar (optional val-*.tar and classes.txt), each shard "
    "holding KEY.jpg (or .png ...) with an optional KEY.cls label, as WebDataset writes them."
)


def scan_shards(data_dir: str | os.PathLike) -> FolderScan:
    """Index every shard of ``data_dir`` (member headers only; nothing is decoded).

    Returns a :class:`~probssl.data.folder.FolderScan` whose paths are :class:`~probssl.data.members.MemberRef`
    (``SHARD:MEMBER``), keyed on the shards' sizes and modification times (the decode cache's key).

    Raises:
        DataError naming the shard (and member) for a missing split, an unreadable or empty shard, a sample
        without an image or with two, a label that is not an integer or outside ``classes.txt``, or shards
        that mix labelled and unlabelled samples.
    """
    root = Path(data_dir).expanduser().absolute()
    if not root.is_dir():
        raise DataError(f"Shard dataset {root} does not exist. {_LAYOUT}")
    splits, labelled = [], set()
    for split in _SPLITS:
        shards = sorted(p for p in root.iterdir() if p.name.startswith(split) and p.suffix == ".tar" and p.is_file())
        if not shards:
            if split == "val":
                continue
            raise DataError(f"Shard dataset {root} has no {split}-*.tar shard. {_LAYOUT}")
        entries = [entry for shard in shards for entry in _samples(shard)]
        labelled |= {label != UNLABELLED for _, label, _, _ in entries}
        splits.append((split, tuple(entries)))
    if len(labelled) > 1:
        raise DataError(f"Shard dataset {root} mixes samples with and without a .cls label: give every sample one.")
    classes = _classes(root, splits) if labelled == {True} else ()
    return FolderScan(root=str(root), classes=classes, splits=tuple(splits), name="shards")


def _samples(shard: Path) -> list[tuple[MemberRef, int, int, int]]:
    """``(image ref, label or UNLABELLED, shard size, shard mtime)`` per sample of one shard, in member order."""
    images: dict[str, MemberRef] = {}
    labels: dict[str, int] = {}
    try:
        with tarfile.open(shard, "r:") as tar:  # uncompressed only: members are read by byte range
            for member in tar:
                if not member.isfile():
                    continue
                key, _, ext = _split_name(member.name)
                if ext in {e.lstrip(".") for e in IMAGE_EXTENSIONS}:
                    if key in images:
                        raise DataError(f"Shard {shard}: sample {key} has two images ({images[key]}, {member.name}).")
                    images[key] = MemberRef(shard, member.name, member.offset_data, member.size)
                elif ext == "cls":
                    labels[key] = _label(tar.extractfile(member).read(), shard, member.name)
    except (tarfile.TarError, OSError) as exc:
        raise DataError(f"Shard {shard} could not be read as an uncompressed tar file ({exc}).") from exc
    if not images:
        raise DataError(f"Shard {shard} holds no images (extensions {', '.join(IMAGE_EXTENSIONS)}). {_LAYOUT}")
    orphans = sorted(set(labels) - set(images))
    if orphans:
        raise DataError(f"Shard {shard}: label {orphans[0]}.cls has no image {orphans[0]}.jpg (or .png ...).")
    st = shard.stat()
    return [(ref, labels.get(key, UNLABELLED), st.st_size, st.st_mtime_ns) for key, ref in images.items()]


def _split_name(name: str) -> tuple[str, str, str]:
    """``dir/abc.seg.jpg`` -> (``dir/abc``, ``seg.jpg``, ``jpg``): WebDataset's key is up to the first dot."""
    head, _, base = name.rpartition("/")
    stem, _, rest = base.partition(".")
    key = f"{head}/{stem}" if head else stem
    return key, rest, rest.rpartition(".")[2].lower()


def _label(raw: bytes, shard: Path, member: str) -> int:
    text = raw.decode("utf-8", "replace").strip()
    if not text.isdigit():
        raise DataError(f"Shard {shard}: {member} holds {text[:40]!r}, not a class index (a decimal integer >= 0).")
    return int(text)


def _classes(root: Path, splits: list) -> tuple[str, ...]:
    """Names from ``classes.txt``, else ``0 .. max label``; every label must name a class."""
    top = max(label for _, entries in splits for _, label, _, _ in entries)
    listing = root / "classes.txt"
    if listing.is_file():
        names = tuple(line.strip() for line in listing.read_text().splitlines() if line.strip())
        if top >= len(names):
            raise DataError(f"Shard dataset {root}: a label {top} but classes.txt names only {len(names)} classes.")
        return names
    return tuple(str(k) for k in range(top + 1))


def _locate(data_dir, download: bool, **options) -> tuple:
    if data_dir is None or str(data_dir) == "":
        raise DataError(f"The 'shards' dataset needs data_dir: the folder that holds the shards. {_LAYOUT}")
    return file_source(scan_shards(data_dir), **options)


register_dataset(
    DatasetFamily(
        "shards",
        _locate,
        read_source,
        description="images in tar shards (WebDataset layout): ROOT/train-*.tar, ROOT/test-*.tar (KEY.jpg + KEY.cls)",
        data_dir_is_root=True,
        options=DECODE_OPTIONS,
    )
)
