"""The user's own images, one sub-folder per class.

Expected layout (file names are free; extensions ``.png .jpg .jpeg .bmp .webp .tif .tiff``, any case)::

    data_dir/
      train/<class_name>/*.png     required; the class names are the train sub-folder names
      test/<class_name>/*.png      required; only classes that exist under train/
      val/<class_name>/*.png       optional; used as the validation split instead of carving one

Classes are numbered in sorted order of their folder names. Files are searched recursively
inside each class folder, in sorted order, so the dataset is identical on every file system.
Hidden files and folders (leading ``.``) and other extensions are ignored.

Images are decoded with Pillow into uint8, one channel if every image is grey-scale (``L``, ``LA``, 16-bit, ``1``),
else three: 16-bit images are scaled to 8 bits (x / 257, rounded: never clipped), palette images are expanded,
and transparency is composited on ``data.alpha_background`` (default 0, black). Images of different sizes need
``data.image_size`` (a silently resized image is a different experiment, so without it they must all match):
``data.resize`` = ``short-side-crop`` (scale the short side to the size, centre crop), ``stretch`` (to a square)
or ``pad`` (scale the long side, pad with the background). Each file is visited once: symlinks are resolved, a
symlink loop or a second link to the same file never inflates or mislabels the set. An image above
``data.max_image_pixels`` pixels is refused from its header, before it is decoded.

Images without classes, for pretraining (``data.name: unlabelled-folder``, :func:`scan_unlabelled_folder`): every
image below ``data_dir`` (sub-folder names ignored), or ``data_dir/train/`` with optional ``val/`` and ``test/``; a
missing test split is carved by ``data.test_fraction`` with a fixed seed (:func:`carve_test`), the validation split
by ``data.val_fraction`` as always. Their classes are ``()`` and every label is ``UNLABELLED`` (-1); evaluation
skips the sections that need labels (see :mod:`probssl.evaluation.evaluate`). The same decoding serves file
lists (:mod:`probssl.data.manifest`).

A set whose decoded pixels would not fit is streamed: ``data.in_memory`` (auto: when they would take more than
half the available memory; false: always) gives :class:`~probssl.data.lazy.LazyImages`, decoded from the files
when indexed (in training by DataLoader workers, ``data.loader_workers``).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .dataset import UNLABELLED, ImageDataset
from .errors import DataError
from .lazy import LazyImages, choose_in_memory
from .members import open_image_source
from .registry import DatasetFamily, register_dataset
from .splits import STREAM_FIXED_TEST, seeded_rng, stratified_split

__all__ = ["IMAGE_EXTENSIONS", "FolderScan", "carve_test", "read_folder", "scan_folder", "scan_unlabelled_folder"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
_SIXTEEN_BIT = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_SPLITS = ("train", "val", "test")

_LAYOUT = (
    "The expected layout is DATA_DIR/train/<class_name>/<image>.png and "
    "DATA_DIR/test/<class_name>/<image>.png (optionally DATA_DIR/val/<class_name>/...), with "
    f"images ending in {', '.join(IMAGE_EXTENSIONS)}."
)
_UNLABELLED_HINT = "For images without classes (pretraining), use data.name: unlabelled-folder."
# The seed of every carved test split: fixed, so the test images never depend on data.split_seed (as digits').
TEST_CARVING_SEED = 0


@dataclass(frozen=True)
class FolderScan:
    """What is on disk: per split, ``(path, label, size_bytes, mtime_ns)`` for every image.

    Hashable, and it changes whenever a file is added, removed, renamed or rewritten, so it
    doubles as the key of the in-process decode cache. ``classes`` is empty (labels ``UNLABELLED``) for
    unlabelled images; ``name`` is the dataset's (``folder``, ``unlabelled-folder``, ``manifest``).
    """

    root: str
    classes: tuple[str, ...]
    splits: tuple[tuple[str, tuple[tuple[str, int, int, int], ...]], ...]
    name: str = "folder"


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
        raise DataError(f"Folder dataset {root}: {train_dir} contains no class folders. {_LAYOUT} {_UNLABELLED_HINT}")
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
                f"image must be inside its class folder. {_LAYOUT} {_UNLABELLED_HINT}"
            )
        class_dirs = sorted(d for d in _visible(split_dir) if d.is_dir())
        real_dirs = {os.path.realpath(d) for d in class_dirs}
        seen: set[str] = set()
        for class_dir in class_dirs:
            if class_dir.name not in index:
                raise DataError(
                    f"Folder dataset {root}: class folder {class_dir} has no counterpart in "
                    f"train/ (train classes: {', '.join(classes)}). Every class must have "
                    f"training images; rename or remove the folder."
                )
            images = _images_in(class_dir, seen, frozenset(real_dirs - {os.path.realpath(class_dir)}))
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


def read_folder(
    scan: FolderScan,
    image_size: int | None = None,
    resize: str = "short-side-crop",
    alpha_background: int = 0,
    max_image_pixels: int = 50_000_000,
    in_memory: str | bool = "auto",
) -> tuple[ImageDataset, ImageDataset | None, ImageDataset]:
    """Decode ``(train, val or None, test)`` of a scanned folder dataset (options: see the module docstring).

    Images are uint8 ``[N, C, H, W]`` with C = 1 (all grey) or 3; labels int64 ``[N]``. in_memory
    (``data.in_memory``): decode everything now, or (false, or auto when the decoded pixels would take more
    than half the available memory) return :class:`~probssl.data.lazy.LazyImages` that decode when indexed.

    Raises:
        DataError naming the file if an image cannot be read, is too large, or (without ``image_size``) has
        another size than the first training image; or if in_memory=true and the set would not fit in memory.
    """
    all_files = [e[0] for _, entries in scan.splits for e in entries]
    grey, size = _headers(all_files, image_size, max_image_pixels)
    width, height = size
    channels = 1 if grey else 3
    memory = choose_in_memory(in_memory, len(all_files) * height * width * channels, scan.root)
    decode = functools.partial(_decode, grey=grey, size=size, resize=resize, background=alpha_background)
    out = {}
    for split, entries in scan.splits:
        paths = [path for path, *_ in entries]
        images = LazyImages(paths, (channels, height, width), decode)
        labels = np.fromiter((label for _, label, _, _ in entries), dtype=np.int64, count=len(entries))
        out[split] = ImageDataset(
            images=images[:] if memory.in_memory else images,
            labels=torch.from_numpy(labels),
            classes=scan.classes,
            name=scan.name,
        )
    return out["train"], out.get("val"), out["test"]


def _open(path: str):
    """Pillow image of ``path`` with its decompression-bomb warning turned into an error (naming the file)."""
    import warnings

    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return Image.open(open_image_source(path))  # a file, or a tar shard member (data.name: shards)
        except (OSError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _unreadable(path, exc) from exc


def _headers(paths: list[str], image_size: int | None, max_pixels: int) -> tuple[bool, tuple[int, int]]:
    """Pass 1, headers only (Pillow opens lazily): grey or colour for the whole set, and the common (W, H);
    fails fast on a too-large or (without image_size) differently sized image before decoding thousands."""
    expected, first, grey = None, "", True
    for path in paths:
        with _open(path) as img:
            size, mode, bands = img.size, img.mode, img.getbands()
        if size[0] * size[1] > max_pixels:
            raise DataError(
                f"Image {path} is {size[0]}x{size[1]} pixels, above data.max_image_pixels = "
                f"{max_pixels:,}: refused before decoding (a decompression bomb, or a photo to downscale first). "
                "Shrink or remove it, or raise data.max_image_pixels."
            )
        if image_size is None and expected is not None and size != expected:
            raise DataError(
                f"Image {path} is {size[0]}x{size[1]} pixels (width x height) but the dataset's "
                f"images are {expected[0]}x{expected[1]} (the size of {first}). Set data.image_size (and "
                "data.resize: short-side-crop | stretch | pad) to bring them to one size, or resize this one."
            )
        expected, first = (expected, first) if expected else (size, path)
        grey = grey and (
            mode in _GREY_MODES or (mode == "P" and _palette_is_grey(path)) or bands in (("L",), ("L", "A"))
        )
    assert expected is not None  # every scan has at least one training image
    return grey, (image_size, image_size) if image_size else expected


def _palette_is_grey(path: str) -> bool:
    with _open(path) as img:
        rgb = np.asarray(img.convert("RGB"))
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def _to_array(img, grey: bool, background: int) -> np.ndarray:
    """uint8 [H, W] or [H, W, 3] from any Pillow mode: 16-bit scaled (not clipped), alpha composited."""
    if img.mode in _SIXTEEN_BIT:
        values = np.asarray(img, dtype=np.float64)
        eight = np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8)  # 65535 -> 255 exactly
        return eight if grey else np.repeat(eight[..., None], 3, axis=-1)
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("LA", "La", "RGBA", "RGBa", "PA"):
        from PIL import Image

        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (background, background, background, 255))
        img = Image.alpha_composite(canvas, rgba)
    return np.asarray(img.convert("L" if grey else "RGB"), dtype=np.uint8)


def _fit(array: np.ndarray, size: tuple[int, int], resize: str, background: int) -> np.ndarray:
    """Bring an image [H, W(, C)] to (W, H) = size by ``resize`` (short-side-crop | stretch | pad)."""
    from PIL import Image

    width, height = size
    if array.shape[1] == width and array.shape[0] == height:
        return array
    img = Image.fromarray(array)
    w, h = img.size
    if resize == "stretch":
        return np.asarray(img.resize((width, height), Image.Resampling.BILINEAR))
    scale = (max if resize == "short-side-crop" else min)(width / w, height / h)
    img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR)
    w, h = img.size
    if resize == "short-side-crop":
        left, top = (w - width) // 2, (h - height) // 2
        return np.asarray(img.crop((left, top, left + width, top + height)))
    fill = background if img.mode == "L" else (background,) * 3
    canvas = Image.new(img.mode, (width, height), fill)
    canvas.paste(img, ((width - w) // 2, (height - h) // 2))
    return np.asarray(canvas)


def _decode(path: str, grey: bool, size: tuple[int, int], resize: str, background: int) -> np.ndarray:
    with _open(path) as img:
        try:
            array = _to_array(img, grey, background)
        except (OSError, ValueError) as exc:
            raise _unreadable(path, exc) from exc
    return _fit(array, size, resize, background)


def _visible(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if not p.name.startswith("."))


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _images_in(class_dir: Path, seen: set[str] | None = None, others: frozenset[str] = frozenset()) -> list[Path]:
    """Images below ``class_dir`` in sorted order, each real file once. Symlinked folders are followed (a class
    may live elsewhere), but never into a folder already visited, an ancestor of the class folder, or another
    class's folder (``others``, real paths): so ``train/a/loop -> ..`` neither loops nor labels b's images as a.
    ``seen``: real paths of files already taken (shared across a split's classes: a second link is skipped)."""
    seen = set() if seen is None else seen
    home = os.path.realpath(class_dir)
    visited_dirs: set[str] = set()
    found = []
    for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=True):
        real_dir = os.path.realpath(dirpath)
        if real_dir in visited_dirs or real_dir in others or home.startswith(real_dir + os.sep):
            dirnames[:] = []  # a loop, a parent, or another class: do not descend
            continue
        visited_dirs.add(real_dir)
        # Prune hidden folders in place so os.walk does not descend into them; sort for a
        # file-system independent order.
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            real = os.path.realpath(path)
            if not name.startswith(".") and _is_image(path) and os.path.isfile(real) and real not in seen:
                seen.add(real)
                found.append(path)
    return found


def _unreadable(path: str, exc: BaseException) -> DataError:
    return DataError(
        f"Image {path} could not be read as an image ({exc}); it is damaged or "
        f"not an image despite its extension. Replace or remove it."
    )


def carve_test(
    entries: tuple[tuple[str, int, int, int], ...], test_fraction: float, where: str
) -> tuple[tuple[tuple[str, int, int, int], ...], tuple[tuple[str, int, int, int], ...]]:
    """Split scan entries ``(path, label, size, mtime)`` into ``(train, test)`` for a set that has no test split
    of its own: ``round(test_fraction * n)`` entries (at least one, leaving two for train and val), stratified by
    label, chosen with a FIXED seed so the test images never depend on ``data.split_seed``.

    Raises:
        DataError naming ``where`` when there are fewer than three images.
    """
    n = len(entries)
    if n < 3:
        raise DataError(
            f"{where} has {n} image(s); carving train, validation and test splits needs at least 3. Add images."
        )
    n_test = min(max(round(test_fraction * n), 1), n - 2)
    labels = torch.tensor([e[1] for e in entries], dtype=torch.int64)
    rest, test = stratified_split(labels, n_test, seeded_rng(TEST_CARVING_SEED, STREAM_FIXED_TEST))
    return tuple(entries[i] for i in rest.tolist()), tuple(entries[i] for i in test.tolist())


def _entry(path: Path | str, label: int) -> tuple[str, int, int, int]:
    st = os.stat(path)
    return (str(path), label, st.st_size, st.st_mtime_ns)


def scan_unlabelled_folder(data_dir: str | os.PathLike, test_fraction: float = 0.1) -> FolderScan:
    """List the images of an unlabelled folder (``data.name: unlabelled-folder``; nothing is decoded).

    Layout: with ``ROOT/train/``, the splits are ``train/``, ``val/`` (optional) and ``test/`` (optional); without
    it, every image below ROOT is the training pool. Images are found recursively (sub-folder names are ignored:
    they are not classes), each real file once across all splits (symlinks resolved, loops not followed). A
    missing ``test/`` is carved from the pool (:func:`carve_test`, ``test_fraction``); a missing ``val/`` is carved
    by ``data.val_fraction`` as for every dataset. Labels are ``UNLABELLED``, classes ``()``.

    Raises:
        DataError naming the folder if it does not exist, a split folder has no images, or ``val/`` / ``test/``
        exist without ``train/``.
    """
    root = Path(data_dir).expanduser().absolute()
    if not root.is_dir():
        raise DataError(
            f"Unlabelled folder {root} {'is not a folder' if root.exists() else 'does not exist'}: set data.data_dir "
            "to the folder that holds your images."
        )
    if (root / "train").is_dir():
        dirs = {split: root / split for split in _SPLITS if (root / split).is_dir()}
    else:
        given = [split for split in ("val", "test") if (root / split).is_dir()]
        if given:
            raise DataError(
                f"Unlabelled folder {root} has {given[0]}/ but no train/: put the training images in "
                f"{root / 'train'}/ (or remove the split folders to use every image below {root})."
            )
        dirs = {"train": root}
    real_dirs = {os.path.realpath(d) for d in dirs.values()}
    seen: set[str] = set()  # shared by the splits: a file linked into two splits is taken once, by the first
    found = {}
    for split, directory in dirs.items():
        images = _images_in(directory, seen, frozenset(real_dirs - {os.path.realpath(directory)}))
        if not images:
            raise DataError(
                f"Unlabelled folder {root}: {directory} contains no images (extensions "
                f"{', '.join(IMAGE_EXTENSIONS)}, searched recursively). Add images or remove the folder."
            )
        found[split] = tuple(_entry(path, UNLABELLED) for path in images)
    if "test" not in found:
        found["train"], found["test"] = carve_test(found["train"], test_fraction, f"Unlabelled folder {root}")
    splits = tuple((split, found[split]) for split in _SPLITS if split in found)
    return FolderScan(root=str(root), classes=(), splits=splits, name="unlabelled-folder")


#: DataConfig fields that every image-file dataset (folder, unlabelled-folder, manifest) passes to :func:`read_folder`.
DECODE_OPTIONS = ("image_size", "resize", "alpha_background", "max_image_pixels", "in_memory")


def file_source(
    scan: FolderScan,
    image_size=None,
    resize="short-side-crop",
    alpha_background=0,
    max_image_pixels=50_000_000,
    in_memory="auto",
) -> tuple:
    """The hashable source of an image-file dataset: its scan and the decode options (:func:`read_folder`)."""
    return (scan, image_size, resize, alpha_background, max_image_pixels, in_memory)


def read_source(source: tuple) -> tuple[ImageDataset, ImageDataset | None, ImageDataset]:
    """``(train, val or None, test)`` of a :func:`file_source`."""
    return read_folder(*source)


def _locate(data_dir, download: bool, **options) -> tuple:
    if data_dir is None or str(data_dir) == "":
        raise DataError(
            "The 'folder' dataset needs data_dir: the folder that holds your train/ and "
            "test/ image folders (DATA_DIR/train/<class_name>/<image>.png)."
        )
    return file_source(scan_folder(data_dir), **options)


def _locate_unlabelled(data_dir, download: bool, test_fraction: float = 0.1, **options) -> tuple:
    if data_dir is None or str(data_dir) == "":
        raise DataError(
            "The 'unlabelled-folder' dataset needs data_dir: the folder that holds your images "
            "(any sub-folders; or ROOT/train/, optional ROOT/val/ and ROOT/test/)."
        )
    return file_source(scan_unlabelled_folder(data_dir, test_fraction), **options)


register_dataset(
    DatasetFamily(
        "folder",
        _locate,
        read_source,
        description="your own images: ROOT/train/<class>/*.png, ROOT/test/<class>/... (optional ROOT/val/)",
        data_dir_is_root=True,
        options=DECODE_OPTIONS,
    )
)
register_dataset(
    DatasetFamily(
        "unlabelled-folder",
        _locate_unlabelled,
        read_source,
        description="your own images without classes, for pretraining: every image below ROOT (or ROOT/train/, "
        "optional ROOT/val/, ROOT/test/); test carved by data.test_fraction when absent",
        aliases=("unlabeled-folder",),
        data_dir_is_root=True,
        options=("test_fraction", *DECODE_OPTIONS),
    )
)
