"""Streamed splits brought into memory for evaluation, within the memory budget.

Training reads a streamed split (:class:`~probssl.data.lazy.LazyImages`) batch by batch; evaluation sections
index, reshape and compare whole splits, so :func:`resident_splits` decodes them first. The test and
validation splits are decoded whole when they fit (every metric is on the full test split); the training
split, which only feeds the probes, the kNN reference and the density fits, is decoded whole when it fits in
what is left, else as a seeded, class-stratified subset of the size that fits (recorded by the evaluation).
"""

from __future__ import annotations

import numpy as np
import torch

from .dataset import DataSplits, ImageDataset
from .errors import DataError
from .lazy import AUTO_MEMORY_SHARE, available_memory, is_lazy
from .splits import stratified_split

__all__ = ["resident_splits"]


def resident_splits(splits: DataSplits, seed: int = 0, budget_bytes: int | None = None) -> tuple[DataSplits, dict]:
    """``(splits with every image tensor in memory, a record of what was decoded)``; in-memory splits pass as is.

    budget_bytes: memory the decoded images may take (None: ``AUTO_MEMORY_SHARE`` of the memory available now,
    unbounded where that cannot be read). Raises DataError when even the test and validation splits exceed it.
    """
    if not any(is_lazy(s.images) for s in (splits.train, splits.val, splits.test)):
        return splits, {}
    if budget_bytes is None:
        available = available_memory()
        budget_bytes = int(AUTO_MEMORY_SHARE * available) if available is not None else 2**62
    per_image = int(np.prod(splits.image_shape))
    left = budget_bytes - per_image * (len(splits.val) + len(splits.test))
    if left < 0:
        raise DataError(
            f"the validation and test splits ({len(splits.val) + len(splits.test)} images) need "
            f"{per_image * (len(splits.val) + len(splits.test)) / 2**30:.1f} GiB decoded, more than the "
            f"{budget_bytes / 2**30:.1f} GiB available for evaluation: use a smaller data.image_size or test set."
        )
    train, n_train = splits.train, len(splits.train)
    keep = min(n_train, left // per_image)
    if keep < n_train:
        _, rows = stratified_split(train.labels, keep, np.random.RandomState(seed))
        train = train.subset(torch.as_tensor(rows, dtype=torch.int64))
    resident = DataSplits(*(_decoded(s) for s in (train, splits.val, splits.test)))
    return resident, {"streamed": True, "train_images": n_train, "train_images_evaluated": len(train)}


def _decoded(split: ImageDataset) -> ImageDataset:
    if not is_lazy(split.images):
        return split
    return ImageDataset(split.images[:], split.labels, split.classes, split.name)
