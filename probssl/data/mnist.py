"""MNIST and Fashion-MNIST: four official IDX files per dataset, 60000 train / 10000 test.

The files (names and MD5s in :mod:`.sources`) live in ``root/mnist/`` and
``root/fashion-mnist/``; :func:`probssl.data.load_dataset` verifies them before decoding here.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .dataset import ImageDataset
from .errors import DataError
from .idx import read_idx_images, read_idx_labels
from .paths import resolve_data_dir
from .registry import DatasetFamily, register_dataset
from .sources import CHECKSUMS, MIRRORS, fetch, idx_relpaths

__all__ = ["MNIST_CLASSES", "FASHION_MNIST_CLASSES", "CLASSES_BY_NAME", "read_idx_pair"]

MNIST_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))

# Label order of Zalando's Fashion-MNIST README.
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

CLASSES_BY_NAME: dict[str, tuple[str, ...]] = {
    "mnist": MNIST_CLASSES,
    "fashion-mnist": FASHION_MNIST_CLASSES,
}


def read_idx_pair(images_path: Path, labels_path: Path, classes: tuple[str, ...], name: str) -> ImageDataset:
    """An :class:`ImageDataset` from one IDX image file and its IDX label file (no checksums).

    Images uint8 ``[N, 1, H, W]``, labels int64 ``[N]``.
    """
    images = read_idx_images(images_path)
    labels = read_idx_labels(labels_path)
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"IDX files {images_path} and {labels_path} do not match: {images.shape[0]} images "
            f"but {labels.shape[0]} labels. One of them is from another dataset or split; "
            f"replace both with the official files."
        )
    if labels.size and int(labels.max()) >= len(classes):
        raise DataError(
            f"IDX label file {labels_path} contains label {int(labels.max())}, but {name} has "
            f"only {len(classes)} classes; it is not the official file. Replace it."
        )
    return ImageDataset(
        images=torch.from_numpy(images).unsqueeze(1),  # [N, H, W] -> [N, 1, H, W], still contiguous
        labels=torch.from_numpy(labels).long(),
        classes=classes,
        name=name,
    )


def _idx_family(name: str, description: str, aliases: tuple[str, ...]) -> DatasetFamily:
    rels = idx_relpaths(name)

    def locate(data_dir, download: bool) -> tuple:
        root = resolve_data_dir(data_dir)
        paths = tuple(str(fetch(root, rel, download=download)) for rel in rels)
        return (paths, tuple(CHECKSUMS[rel] for rel in rels))  # MD5s in the key: stand-in files never share a cache

    def decode(source) -> tuple[ImageDataset, None, ImageDataset]:
        paths = [Path(p) for p in source[0]]
        classes = CLASSES_BY_NAME[name]
        return read_idx_pair(paths[0], paths[1], classes, name), None, read_idx_pair(paths[2], paths[3], classes, name)

    return DatasetFamily(
        name,
        locate,
        decode,
        description=description,
        aliases=aliases,
        files=tuple((rel, CHECKSUMS[rel]) for rel in rels),
        urls=MIRRORS[name],
    )


register_dataset(_idx_family("mnist", "MNIST handwritten digits, the official idx files", ()))
register_dataset(_idx_family("fashion-mnist", "Fashion-MNIST, the official idx files", ("fashionmnist", "fmnist")))
