"""Private helpers shared by the model families."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def to_pair(size: int | Sequence[int]) -> tuple[int, int]:
    """``28 -> (28, 28)``; ``(28, 32) -> (28, 32)``."""
    if isinstance(size, int) and not isinstance(size, bool):
        return size, size
    h, w = size  # type: ignore[misc]
    return int(h), int(w)


def halve(size: int) -> int:
    """Output side of a 3x3 / stride-2 / padding-1 convolution: ``ceil(size / 2)``."""
    return (size + 1) // 2


def halving_chain(size: int, min_size: int = 4) -> list[int]:
    """Sides visited when halving (with ceil) until the side is ``<= min_size``.

    ``28 -> [28, 14, 7, 4]``, ``32 -> [32, 16, 8, 4]``, ``8 -> [8, 4]``, ``4 -> [4]``.
    """
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    chain = [size]
    while chain[-1] > min_size:
        chain.append(halve(chain[-1]))
    return chain


def num_halvings(size: int | Sequence[int], min_size: int = 4) -> int:
    """How many ceil-halvings bring the larger side of ``size`` to ``<= min_size``."""
    h, w = to_pair(size)
    return len(halving_chain(max(h, w), min_size)) - 1


def check_out_shape(out_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in out_shape)
    if len(shape) != 3 or any(s <= 0 for s in shape):
        raise ValueError(f"out_shape must be (C, H, W) with positive entries, got {tuple(out_shape)!r}")
    return shape  # type: ignore[return-value]


def init_conv_bn(module: nn.Module) -> None:
    """He-normal (fan-out, ReLU) for every Conv2d, BatchNorm2d to the identity: the torchvision ResNet init."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
