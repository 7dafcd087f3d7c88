"""probssl.data: labelled image datasets as in-memory uint8 tensors with train/val/test splits.

Typical use::

    from probssl.data import load_dataset
    splits = load_dataset("mnist", val_fraction=0.1, split_seed=0)
    x = splits.train.images.float() / 255      # [N, 1, 28, 28]; never modify .images in place
    y = splits.train.labels                     # int64 [N]

Datasets (:func:`list_datasets`; each module registers its own with :func:`register_dataset`) and where their files live under the data root
(:func:`resolve_data_dir`: argument, else ``$PROBSSL_DATA``, else ``~/.cache/probssl``):

* ``digits``: scikit-learn's bundled 8x8 digits; nothing on disk.
* ``mnist``, ``fashion-mnist``: the four official IDX ``.gz`` files in ``root/mnist/`` and
  ``root/fashion-mnist/``.
* ``cifar10``, ``cifar100``: the official python-version ``.tar.gz`` in ``root/cifar10/`` and
  ``root/cifar100/``.
* ``folder``: your own images, ``data_dir/{train,test[,val]}/<class_name>/*.png``.
* ``unlabelled-folder``: your own images without classes (pretraining): every image below ``data_dir``, or
  ``data_dir/train/`` with optional ``val/`` and ``test/``; a missing test split is carved by ``data.test_fraction``.
* ``manifest``: a file list, ``data_dir`` = a CSV (``path[,label][,split]``) or TXT (one path per line).

Unlabelled sets have ``classes == ()`` and every label ``UNLABELLED`` (-1); ``splits.labelled`` tells them apart.

Official files are MD5-verified on every load and downloaded when missing (``download=True``).
Every problem with the data is a :class:`DataError` whose message says what to do.
"""

import importlib
import pkgutil

from .dataset import UNLABELLED, DataSplits, ImageDataset
from .download import download_file, verify_file
from .errors import DataError
from .paths import resolve_data_dir
from .registry import (
    DATASETS,
    DatasetFamily,
    keep_classes,
    list_datasets,
    load_dataset,
    load_splits,
    register_dataset,
    to_float_images,
    unregister_dataset,
)

# Every dataset module registers its family on import: the built-ins in this order, then any other module.
for _name in ("digits", "mnist", "cifar", "folder", "manifest"):
    importlib.import_module(f"{__name__}.{_name}")
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "DataError",
    "ImageDataset",
    "DataSplits",
    "UNLABELLED",
    "DATASETS",
    "DatasetFamily",
    "keep_classes",
    "list_datasets",
    "load_splits",
    "register_dataset",
    "to_float_images",
    "unregister_dataset",
    "resolve_data_dir",
    "load_dataset",
    "verify_file",
    "download_file",
]
