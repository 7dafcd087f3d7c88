"""Supervised methods' shared check: a method that needs labels says so instead of failing in the loss."""

from __future__ import annotations

from torch import Tensor

__all__ = ["require_labels"]


def require_labels(method_name: str, labels: Tensor | None) -> Tensor:
    """``labels`` [N], or a ValueError naming the method when the batch came without them."""
    if labels is None:
        raise ValueError(f"{method_name} is supervised: loss_terms needs the [N] labels of the batch")
    return labels
