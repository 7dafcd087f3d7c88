"""scikit-learn's bundled 8x8 handwritten digits: real data that needs no download.

1797 grey images with 17 intensity levels (0..16), 10 classes. The set has no official test
split, so a fixed stratified 20% (359 images) is held out as the test set with a fixed seed that
does **not** depend on ``split_seed``: the test set is then the same for every run and every
validation seed, as with the datasets that ship a test split.
"""

from __future__ import annotations

import numpy as np
import torch

from .dataset import ImageDataset
from .errors import DataError
from .registry import DatasetFamily, register_dataset
from .splits import STREAM_FIXED_TEST, seeded_rng, stratified_split

__all__ = ["DIGITS_TEST_FRACTION", "DIGITS_TEST_SEED", "load_digits_dataset"]

DIGITS_TEST_FRACTION = 0.2
DIGITS_TEST_SEED = 0
_LEVELS = 16


def load_digits_dataset() -> tuple[ImageDataset, ImageDataset]:
    """``(train, test)``: 1438 / 359 images, uint8 ``[N, 1, 8, 8]``, labels int64 ``[N]``.

    Intensities ``v`` in 0..16 become ``round(v * 255 / 16)``, so 0 stays black and 16 is 255.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - scikit-learn is a hard dependency
        raise DataError(
            "The 'digits' dataset is bundled with scikit-learn, which is not installed; install "
            "it with 'pip install scikit-learn'."
        ) from exc
    bunch = load_digits()
    pixels = np.rint(bunch.data.reshape(-1, 1, 8, 8) * (255.0 / _LEVELS)).astype(np.uint8)
    full = ImageDataset(
        images=torch.from_numpy(np.ascontiguousarray(pixels)),
        labels=torch.from_numpy(bunch.target.astype(np.int64)),
        classes=tuple(str(d) for d in range(10)),
        name="digits",
    )
    n_test = round(DIGITS_TEST_FRACTION * len(full))
    train_ix, test_ix = stratified_split(full.labels, n_test, seeded_rng(DIGITS_TEST_SEED, STREAM_FIXED_TEST))
    return full.subset(train_ix), full.subset(test_ix)


def _locate(data_dir, download: bool) -> tuple:
    return ("digits",)  # bundled with scikit-learn: nothing on disk


def _decode(source) -> tuple[ImageDataset, None, ImageDataset]:
    train, test = load_digits_dataset()
    return train, None, test


register_dataset(
    DatasetFamily(
        "digits",
        _locate,
        _decode,
        description="scikit-learn's bundled 8x8 digits (1,797 images); fixed stratified 20% test split",
    )
)
