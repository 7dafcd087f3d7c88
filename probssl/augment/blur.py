"""Gaussian blur with a per-sample sigma: separable grouped convolution over N*C channels.

Each sample gets its own normalised 1-D kernel [k]; the batch is viewed as one image with N*C channels,
reflect-padded, and convolved twice (vertical k x 1, then horizontal 1 x k) with ``groups = N*C`` --
two ``conv2d`` calls for the whole batch. This equals a 2-D convolution with the outer-product kernel on
the reflect-padded image. A sigma <= 0 gives a delta kernel (identity).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._utils import apply_to_subset, check_generator, check_images, rand, uniform

__all__ = ["default_kernel_size", "gaussian_kernel1d", "gaussian_blur", "random_gaussian_blur"]


def default_kernel_size(height: int, width: int) -> int:
    """About 10% of the shorter image side, made odd, at least 3 (SimCLR: 23 for 224 px; 3 for 32 px)."""
    k = int(0.1 * min(height, width))
    k += 1 - k % 2
    return max(3, k)


def gaussian_kernel1d(sigma: Tensor, kernel_size: int) -> Tensor:
    """Per-sample normalised Gaussian kernels: sigma [N] -> [N, kernel_size] (float64, sigma's device)."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
    sigma = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1, 1).clamp(min=1e-6)
    radius = kernel_size // 2
    x = torch.arange(-radius, radius + 1, dtype=torch.float64, device=sigma.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum(dim=1, keepdim=True)


def gaussian_blur(images: Tensor, sigma: float | Tensor, kernel_size: int | None = None) -> Tensor:
    """Blur each sample with its own Gaussian (reflect padding).

    Args:
        images: float [N, C, H, W], any device.
        sigma: scalar or [N] standard deviations in pixels (<= 0 means no blur).
        kernel_size: odd kernel size; ``None`` -> :func:`default_kernel_size`. Must be < 2 * min(H, W)
            (reflect padding needs ``kernel_size // 2 < H, W``).

    Returns:
        float [N, C, H, W].
    """
    check_images(images)
    n, c, height, width = images.shape
    k = default_kernel_size(height, width) if kernel_size is None else int(kernel_size)
    pad = k // 2
    if pad >= height or pad >= width:
        raise ValueError(f"kernel_size {k} too large for a {height}x{width} image (reflect padding)")
    sigma = torch.as_tensor(sigma, dtype=torch.float64)
    if sigma.ndim == 0:
        sigma = sigma.expand(n)
    if sigma.shape != (n,):
        raise ValueError(f"sigma must be a scalar or have shape [N]=[{n}], got {tuple(sigma.shape)}")
    if n == 0:
        return images.clone()
    kernel = gaussian_kernel1d(sigma, k).to(device=images.device, dtype=images.dtype)  # [N, k]
    kernel = kernel.repeat_interleave(c, dim=0)  # [N*C, k]: channel j of sample i -> row i*C + j
    x = images.reshape(1, n * c, height, width)
    if pad > 0:
        x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    x = F.conv2d(x, kernel.view(n * c, 1, k, 1), groups=n * c)
    x = F.conv2d(x, kernel.view(n * c, 1, 1, k), groups=n * c)
    return x.view(n, c, height, width)


def random_gaussian_blur(
    images: Tensor,
    sigma: tuple[float, float] = (0.1, 2.0),
    p: float = 0.5,
    kernel_size: int | None = None,
    generator: torch.Generator | None = None,
    inplace: bool = False,
) -> Tensor:
    """With probability ``p`` per sample blur with sigma ~ U(sigma); other samples are untouched.

    Draw order from the CPU ``generator``: N (apply), N (sigma). The blur runs once on the sub-batch of
    selected samples. ``inplace``: write the blurred rows into ``images`` instead of a copy.
    """
    check_images(images)
    check_generator(generator)
    n = images.shape[0]
    mask = rand(n, generator) < p
    sig = uniform(n, sigma[0], sigma[1], generator)
    return apply_to_subset(images, mask, lambda x, s: gaussian_blur(x, s, kernel_size), sig, inplace=inplace)
