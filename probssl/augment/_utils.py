"""Small helpers shared by the augmentation ops (not part of the public API)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def check_images(images: Tensor, name: str = "images", channels: tuple[int, ...] | None = None) -> None:
    """Raise if ``images`` is not a floating [N, C, H, W] tensor (optionally with C in ``channels``)."""
    if not isinstance(images, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"{name} must have shape [N, C, H, W], got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor in [0, 1], got {images.dtype}")
    if channels is not None and images.shape[1] not in channels:
        raise ValueError(f"{name} must have C in {channels}, got C={images.shape[1]}")


def check_generator(generator: torch.Generator | None) -> None:
    """Parameters are always drawn on the CPU so that results do not depend on the device."""
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(
            f"generator must be a CPU torch.Generator (parameters are drawn on the CPU), got {generator.device}"
        )


def rand(n: int | tuple[int, ...], generator: torch.Generator | None) -> Tensor:
    """U[0, 1) draws on the CPU in float64 (``generator=None`` uses torch's default CPU generator)."""
    shape = (n,) if isinstance(n, int) else tuple(n)
    return torch.rand(shape, generator=generator, dtype=torch.float64)


def uniform(n: int, low: float, high: float, generator: torch.Generator | None) -> Tensor:
    """[n] float64 CPU draws from U[low, high)."""
    return low + (high - low) * rand(n, generator)


def batch_param(value: float | Tensor, images: Tensor, name: str) -> Tensor:
    """A scalar or an [N] tensor -> a tensor broadcastable against [N, C, H, W] images.

    The result lives on ``images.device`` with ``images.dtype``; a scalar gives shape [] and an [N] tensor
    gives shape [N, 1, 1, 1].
    """
    t = torch.as_tensor(value).to(device=images.device, dtype=images.dtype)
    if t.ndim == 0:
        return t
    n = images.shape[0]
    if t.shape != (n,):
        raise ValueError(f"{name} must be a scalar or have shape [N]=[{n}], got {tuple(t.shape)}")
    return t.view(n, 1, 1, 1)


def batch_mask(mask: Tensor, n: int, name: str = "mask") -> Tensor:
    """Validate an [N] boolean mask and return it."""
    mask = torch.as_tensor(mask)
    if mask.dtype != torch.bool or mask.shape != (n,):
        raise ValueError(f"{name} must be a bool tensor of shape [N]=[{n}], got {mask.dtype} {tuple(mask.shape)}")
    return mask


def apply_to_subset(
    images: Tensor, mask: Tensor, fn: Callable[..., Tensor], *params: Tensor, inplace: bool = False
) -> Tensor:
    """Return ``images`` with ``fn(images[mask], *[p[mask] for p in params])`` written into the masked rows.

    ``mask`` is an [N] bool tensor (typically on the CPU, so finding the rows needs no device sync);
    each ``param`` is an [N] tensor. One call of ``fn`` on the selected sub-batch: no per-image loop.
    With ``inplace=False`` the input is not modified (a new tensor is returned unless no row is selected,
    in which case ``images`` itself is returned); with ``inplace=True`` the rows are written into
    ``images`` (which must own its memory) and it is returned.
    """
    idx = mask.nonzero().squeeze(1)
    if idx.numel() == 0:
        return images
    if idx.numel() == images.shape[0]:
        out = fn(images, *params)
        return images.copy_(out) if inplace else out
    sub_params = [p.index_select(0, idx.to(p.device)) for p in params]
    idx_d = idx.to(images.device)
    out = fn(images.index_select(0, idx_d), *sub_params).to(images.dtype)
    if inplace:
        return images.index_copy_(0, idx_d, out)
    return images.index_copy(0, idx_d, out)
