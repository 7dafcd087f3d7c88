"""Deterministic stratified splitting.

Randomness comes from :class:`numpy.random.RandomState`, whose streams numpy guarantees never to
change between releases (unlike ``default_rng`` or ``torch.randperm``): the same seed gives the
same validation images on every machine and library version, so results stay comparable.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["stratified_counts", "stratified_split", "seeded_rng"]

# Independent random streams per purpose, so that e.g. changing the training-subset size never
# changes which images are held out for validation.
STREAM_VAL = 0
STREAM_SUBSET = 1
STREAM_FIXED_TEST = 2


def seeded_rng(seed: int, stream: int) -> np.random.RandomState:
    """A RandomState for ``(seed, stream)``; different streams are statistically independent."""
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    return np.random.RandomState([int(seed), int(stream)])


def stratified_counts(class_sizes: np.ndarray, n_take: int) -> np.ndarray:
    """How many items to take from each class so the total is exactly ``n_take``.

    Each class gets ``n_take * size / total`` rounded down, and the leftover items go to the
    classes with the largest remainders (ties to the lower class index): the largest-remainder
    method, so class proportions are matched as closely as integers allow.
    """
    class_sizes = np.asarray(class_sizes, dtype=np.int64)
    total = int(class_sizes.sum())
    if not 0 <= n_take <= total:
        raise ValueError(f"cannot take {n_take} items out of {total}")
    if total == 0:
        return np.zeros_like(class_sizes)
    # Exact integer arithmetic: floating quotas could round differently across platforms.
    numer = class_sizes * n_take
    counts = numer // total
    remainder = numer - counts * total
    leftover = n_take - int(counts.sum())
    order = np.lexsort((np.arange(len(class_sizes)), -remainder))
    counts[order[:leftover]] += 1
    return counts


def stratified_split(
    labels: torch.Tensor, n_take: int, rng: np.random.RandomState
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split positions ``0..N-1`` into ``(rest, taken)`` with ``len(taken) == n_take``.

    ``taken`` holds each class in (nearly) the same proportion as ``labels``; within a class the
    items are chosen uniformly at random by ``rng``. Both outputs are sorted int64 ``[*]``
    tensors, disjoint, and together cover every position once.
    """
    y = labels.cpu().numpy().astype(np.int64, copy=False)
    classes, inverse = np.unique(y, return_inverse=True)
    by_class = [np.flatnonzero(inverse == k) for k in range(len(classes))]
    counts = stratified_counts(np.array([len(ix) for ix in by_class]), n_take)
    taken = [rng.permutation(ix)[:c] for ix, c in zip(by_class, counts)]
    taken_ix = np.sort(np.concatenate(taken)) if taken else np.zeros(0, dtype=np.int64)
    mask = np.ones(len(y), dtype=bool)
    mask[taken_ix] = False
    rest_ix = np.flatnonzero(mask)
    return torch.from_numpy(rest_ix.astype(np.int64)), torch.from_numpy(taken_ix.astype(np.int64))
