"""CelebA (Liu et al., ICCV 2015), the aligned and cropped faces: ``data.name: celeba`` (SimVAE's hair-colour task,
or with ``data.attribute`` one binary attribute, e.g. ``data.attribute: Smiling``).

The official files are on Google Drive (https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html, "Align&Cropped
Images"), which serves no plain URL a script can fetch: place them by hand in ``root/celeba/``::

    root/celeba/img_align_celeba.zip       Img/img_align_celeba.zip (202,599 JPEGs 178x218, img_align_celeba/*.jpg)
      or root/celeba/img_align_celeba/     the same images extracted (000001.jpg ... 202599.jpg)
    root/celeba/list_attr_celeba.txt       Anno/list_attr_celeba.txt
    root/celeba/list_eval_partition.txt    Eval/list_eval_partition.txt

``list_attr_celeba.txt``: the image count, then the 40 attribute names, then one line per image, its file name and
40 values -1 / 1 (space separated, padded). ``list_eval_partition.txt``: file name and 0 (train, 162,770 images),
1 (val, 19,867) or 2 (test, 19,962): the official splits are used, so ``data.val_fraction`` does not apply. The
two text files and the zip are MD5-verified (torchvision's checksums); the zip is read in place (nothing
extracted), an extracted folder's images are checked to exist. Images decode as a folder dataset's (178x218
native; ``data.image_size`` e.g. 64 with ``data.resize``) and stream when they would not fit in memory.

Tasks (the labels; the images are the same):

* ``data.attribute: null`` (the default; ``celeba-hair`` is an alias), SimVAE's hair colour: classes Black_Hair, Blond_Hair, Brown_Hair, Gray_Hair and
  ``none`` (none of the four); only images with exactly one of these five are kept (an image marked with two hair
  colours is dropped).
* ``data.attribute: <Attribute>``, one of the 40 (any case, ``-`` or ``_``: ``5_o_Clock_Shadow``, ``smiling``,
  ``wearing-lipstick``): classes ``not <Attribute>`` (-1) and ``<Attribute>`` (1), every image kept.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from probssl.config import did_you_mean

from .errors import DataError
from .folder import DECODE_OPTIONS, FolderScan, file_source, read_source
from .official import fetch_official, zip_members
from .paths import resolve_data_dir
from .registry import DatasetFamily, register_dataset

__all__ = ["CELEBA_ATTRIBUTES", "CELEBA_MD5", "HAIR_CLASSES", "read_celeba_lists", "scan_celeba", "task_labels"]

PAGE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
ATTR, PARTITION, ZIP, FOLDER = (
    "celeba/list_attr_celeba.txt",
    "celeba/list_eval_partition.txt",
    "celeba/img_align_celeba.zip",
    "img_align_celeba",
)
# MD5s as torchvision lists them (torchvision/datasets/celeba.py, CelebA.file_list). Looked up at call time, so
# tests can substitute small files.
CELEBA_MD5: dict[str, str] = {
    ZIP: "00d2c5bc6d35e252742224ab0c1e8fcb",
    ATTR: "75e246fa4810816ffd6ee81facbd244c",
    PARTITION: "d32c9cbf5e040fd4025c592c306e6668",
}
# The 40 attributes in the order of the official list_attr_celeba.txt header.
CELEBA_ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips", "Big_Nose",
    "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses",
    "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache",
    "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks",
    "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick",
    "Wearing_Necklace", "Wearing_Necktie", "Young",
)  # fmt: skip
HAIR = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")
HAIR_CLASSES = (*HAIR, "none")
_SPLITS = ("train", "val", "test")


def _manual(rel: str) -> str:
    return (
        f"CelebA's files are on Google Drive and cannot be downloaded automatically: get them from {PAGE} "
        f"(Align&Cropped Images: Img/img_align_celeba.zip, Anno/list_attr_celeba.txt, Eval/list_eval_partition.txt) "
        f"and place {rel.split('/')[1]} in ROOT/celeba/"
    )


def read_celeba_lists(attr_path: Path, partition_path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(file names [N], attributes int8 [N, 40] of -1/1, partition int64 [N] of 0/1/2)`` in the attribute file's
    order.

    Raises:
        DataError naming the file and line if either file does not have the documented structure or they list
        different images.
    """
    fix = f"It is not the official file: replace it with the one from {PAGE}."
    lines = attr_path.read_text(encoding="utf-8", errors="replace").splitlines()
    header = lines[1].split() if len(lines) > 1 else []
    if len(lines) < 2 or not lines[0].strip().isdigit() or tuple(header) != CELEBA_ATTRIBUTES:
        raise DataError(f"CelebA file {attr_path} should start with the image count and the 40 attribute names. {fix}")
    rows = [line.split() for line in lines[2:] if line.strip()]
    bad = next((i for i, r in enumerate(rows) if len(r) != 41 or not set(r[1:]) <= {"-1", "1"}), None)
    if bad is not None or len(rows) != int(lines[0]):
        where = f"line {bad + 3} is not a file name and 40 values -1 / 1" if bad is not None else "the count is wrong"
        raise DataError(f"CelebA file {attr_path}: {where} (header says {lines[0].strip()} images). {fix}")
    names = [r[0] for r in rows]
    attrs = np.array([r[1:] for r in rows], dtype=np.int8).reshape(len(rows), 40)
    split_of = {}
    for number, line in enumerate(partition_path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise DataError(f"CelebA file {partition_path}: line {number} is not a file name and 0 / 1 / 2. {fix}")
        split_of[fields[0]] = int(fields[1])
    missing = [n for n in names if n not in split_of]
    if missing:
        raise DataError(f"CelebA file {partition_path} has no split for {missing[0]} (listed in {attr_path}). {fix}")
    return names, attrs, np.array([split_of[n] for n in names], dtype=np.int64)


def task_labels(attrs: np.ndarray, task: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """``(kept rows [M], labels int64 [M], classes)`` of a task on the attributes ``[N, 40]`` (-1 / 1).

    ``task``: ``"hair"`` (classes :data:`HAIR_CLASSES`; rows with exactly one of the four hair colours, or none of
    them = ``none``) or an attribute name (classes ``not A``, ``A``; every row).
    """
    if task == "hair":
        hair = attrs[:, [CELEBA_ATTRIBUTES.index(a) for a in HAIR]] == 1  # [N, 4]
        count = hair.sum(1)
        keep = np.flatnonzero(count <= 1)
        labels = np.where(count[keep] == 1, hair[keep].argmax(1), len(HAIR))
        return keep, labels.astype(np.int64), HAIR_CLASSES
    column = attrs[:, CELEBA_ATTRIBUTES.index(task)]
    return np.arange(len(attrs)), (column == 1).astype(np.int64), (f"not {task}", task)


def scan_celeba(
    names: list[str], attrs: np.ndarray, partition: np.ndarray, images: dict[str, object], task: str, where: str, stamp
) -> FolderScan:
    """The train / val / test scan of a task; ``images``: file name -> path or zip member; ``stamp(path)`` ->
    (size, mtime_ns).

    Raises:
        DataError naming the first image listed in the attribute file but missing from ``images``.
    """
    keep, labels, classes = task_labels(attrs, task)
    splits = {s: [] for s in _SPLITS}
    for row, label in zip(keep.tolist(), labels.tolist()):
        path = images.get(names[row])
        if path is None:
            raise DataError(
                f"CelebA image {names[row]} (listed in list_attr_celeba.txt) is missing from {where}: the images must "
                f"be the official aligned set {FOLDER}/000001.jpg ... (from {PAGE})."
            )
        splits[_SPLITS[partition[row]]].append((path, label, *stamp(path)))
    empty = [s for s in _SPLITS if not splits[s]]
    if empty:
        raise DataError(f"CelebA {where}: list_eval_partition.txt puts no image of this task in the {empty[0]} split.")
    name = "celeba" if task == "hair" else f"celeba-{task.lower().replace('_', '-')}"
    return FolderScan(str(where), classes, tuple((s, tuple(splits[s])) for s in _SPLITS), name)


def _images(root: Path) -> tuple[dict[str, object], str, object]:
    """File name -> image path (extracted folder) or zip member, where they are, and their stamp function."""
    folder = root / "celeba" / FOLDER
    if folder.is_dir():
        files = {e.name: e.path for e in os.scandir(folder) if e.is_file()}
        return files, str(folder), lambda p: (os.stat(p).st_size, os.stat(p).st_mtime_ns)
    archive = fetch_official(
        root, ZIP, CELEBA_MD5[ZIP], (), download=False, manual=_manual(ZIP) + f" (or extract it there as {FOLDER}/)"
    )
    st = archive.stat()
    members = {n.split("/", 1)[1]: ref for n, ref in zip_members(archive).items() if n.startswith(f"{FOLDER}/")}
    return members, str(archive), lambda _: (st.st_size, st.st_mtime_ns)


def attribute_task(attribute: str | None) -> str:
    """``data.attribute`` -> the task: None is SimVAE's hair colour; an attribute in any case, with - or _ (e.g.
    ``smiling``, ``Wearing_Lipstick``, ``5-o-clock-shadow``) is that binary attribute."""
    if attribute is None:
        return "hair"
    by_key = {a.lower(): a for a in CELEBA_ATTRIBUTES}
    key = str(attribute).lower().replace("-", "_")
    if key not in by_key:
        raise DataError(
            f"data.attribute {attribute!r} is not a CelebA attribute.{did_you_mean(key, list(by_key), cutoff=0.5)} "
            f"Attributes: {', '.join(CELEBA_ATTRIBUTES)}; or null for SimVAE's hair-colour task."
        )
    return by_key[key]


def _locate(data_dir, download: bool, attribute: str | None = None, **options) -> tuple:
    task = attribute_task(attribute)
    root = resolve_data_dir(data_dir)
    lists = [
        fetch_official(root, rel, CELEBA_MD5[rel], (), download=False, manual=_manual(rel)) for rel in (ATTR, PARTITION)
    ]
    names, attrs, partition = _cached_lists(*(str(p) for p in lists), *(CELEBA_MD5[r] for r in (ATTR, PARTITION)))
    images, where, stamp = _images(root)
    return file_source(scan_celeba(names, attrs, partition, images, task, where, stamp), **options)


_LISTS: dict[tuple, tuple] = {}


def _cached_lists(attr: str, partition: str, *md5s: str) -> tuple:
    """:func:`read_celeba_lists` of verified files, parsed once per process per content (200,000 lines each)."""
    key = (attr, partition, *md5s, *(os.stat(p).st_mtime_ns for p in (attr, partition)))
    if key not in _LISTS:
        _LISTS.clear()
        _LISTS[key] = read_celeba_lists(Path(attr), Path(partition))
    return _LISTS[key]


register_dataset(
    DatasetFamily(
        "celeba",
        _locate,
        read_source,
        description="CelebA aligned faces, official splits: SimVAE's hair colour (black / blond / brown / gray / "
        "none; images with exactly one), or one binary attribute with data.attribute (e.g. Smiling)",
        aliases=("celeba-hair",),
        files=tuple((rel, CELEBA_MD5[rel]) for rel in (ZIP, ATTR, PARTITION)),
        options=(*DECODE_OPTIONS, "attribute"),
    )
)
