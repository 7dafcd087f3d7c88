"""Supervised methods' shared check: a method that needs labels says so instead of failing in the loss."""

from __future__ import annotations

from torch import Tensor

from probssl.data import UNLABELLED, DataError

__all__ = ["require_labels"]


def require_labels(method_name: str, labels: Tensor | None) -> Tensor:
    """``labels`` [N], or a ValueError naming the method when the batch came without them (a DataError when the
    images are unlabelled: every label ``UNLABELLED``, which a supervised loss would read as one shared class)."""
    if labels is None:
        raise ValueError(f"{method_name} is supervised: loss_terms needs the [N] labels of the batch")
    if labels.numel() and bool((labels == UNLABELLED).any()):
        raise DataError(
            f"{method_name} is supervised, but the training images have no labels (unlabelled-folder, or a manifest "
            "without a label column): choose a self-supervised method, or give the images classes."
        )
    return labels
