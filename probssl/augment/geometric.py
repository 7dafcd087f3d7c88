"""Geometric augmentations: random resized crop with horizontal / vertical flips.

The crop, the resize and both flips are fused into ONE ``F.grid_sample`` call on the whole batch: each
sample gets a [2, 3] affine ``theta`` mapping the output grid onto its crop box (a negative diagonal
entry flips that axis about the box centre). Because these thetas are axis-aligned, the sampling grid
``F.affine_grid(theta, size, align_corners=False)`` is built by broadcasting (:func:`crop_grid`, equal
to ``affine_grid`` up to float rounding) -- ~20x faster on CPU than ``affine_grid``'s batched matmul.

Coordinates. With ``align_corners=False`` normalised coordinate -1 is the outer edge of the first pixel
and +1 the outer edge of the last one. A box with top-left corner ``(top, left)`` and size ``(h, w)`` in
pixel-edge units of an H x W image spans ``[2*left/W - 1, 2*(left+w)/W - 1]`` horizontally, so

    theta = [[sx * w / W, 0,          (2*left + w) / W - 1],
             [0,          sy * h / H, (2*top  + h) / H - 1]]      sx, sy = -1 for a flip, else +1.

Interpolation is bilinear without antialiasing (like torchvision's ``resized_crop`` on tensors with
``antialias=False``): an unscaled crop is plain slicing, down-sampling by 2 averages 2x2 blocks, larger
down-sampling factors point-sample and can alias. Up-sampled crops interpolate with the pixels just
outside the box, as in torchvision. ``padding_mode`` only matters for the half-pixel band beyond the
image border reached when up-sampling a box that touches the border: "border" (default) repeats the
edge pixel, exactly like ``F.interpolate(..., mode="bilinear", align_corners=False)``; "zeros" fades to
black; "reflection" mirrors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ._utils import batch_mask, check_generator, check_images, rand

__all__ = ["sample_crop_boxes", "crop_theta", "crop_grid", "resized_crop", "random_resized_crop"]

_PADDING_MODES = ("border", "zeros", "reflection")


def _output_size(images: Tensor, output_size: int | Sequence[int] | None) -> tuple[int, int]:
    if output_size is None:
        return int(images.shape[-2]), int(images.shape[-1])
    if isinstance(output_size, int):
        output_size = (output_size, output_size)
    oh, ow = (int(s) for s in output_size)
    if oh <= 0 or ow <= 0:
        raise ValueError(f"output_size must be positive, got {tuple(output_size)}")
    return oh, ow


def sample_crop_boxes(
    n: int,
    height: int,
    width: int,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
    attempts: int = 10,
) -> Tensor:
    """Draw ``n`` RandomResizedCrop boxes for an ``height`` x ``width`` image, vectorised.

    Same distribution as ``torchvision.transforms.RandomResizedCrop.get_params``: area fraction
    ~ U(scale), log aspect ratio (w/h) ~ U(log ratio), integer box size ``round(sqrt(area * r))`` x
    ``round(sqrt(area / r))``, integer offset uniform over all positions where the box fits. torchvision
    tries up to 10 times in a Python loop; here all ``attempts`` candidates per sample are drawn at once
    and the first one that fits is kept; if none fits the central crop clamped to ``ratio`` is used.

    Always consumes ``n * (2 * attempts + 2)`` uniforms from ``generator`` (a CPU generator; ``None``
    uses torch's default one).

    Returns a float64 CPU tensor [n, 4] of (top, left, height, width) in pixels.
    """
    check_generator(generator)
    if not (0 < scale[0] <= scale[1]):
        raise ValueError(f"scale must satisfy 0 < low <= high, got {scale}")
    if not (0 < ratio[0] <= ratio[1]):
        raise ValueError(f"ratio must satisfy 0 < low <= high, got {ratio}")
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    area = float(height * width)
    u_area = rand((n, attempts), generator)
    u_ratio = rand((n, attempts), generator)
    u_top = rand(n, generator)
    u_left = rand(n, generator)

    target_area = area * (scale[0] + (scale[1] - scale[0]) * u_area)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u_ratio)
    w = torch.round(torch.sqrt(target_area * aspect))
    h = torch.round(torch.sqrt(target_area / aspect))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # first fitting candidate (0 if none)
    any_fit = fits.any(dim=1)
    w = w.gather(1, first).squeeze(1)
    h = h.gather(1, first).squeeze(1)

    # Fallback: central crop with the aspect ratio clamped to ``ratio`` (torchvision's rule).
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fw, fh = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        fh, fw = height, int(round(height * ratio[1]))
    else:
        fw, fh = width, height
    w = torch.where(any_fit, w, torch.full_like(w, float(fw)))
    h = torch.where(any_fit, h, torch.full_like(h, float(fh)))
    top = torch.floor(u_top * (height - h + 1)).clamp(max=height - h)
    left = torch.floor(u_left * (width - w + 1)).clamp(max=width - w)
    top = torch.where(any_fit, top, torch.full_like(top, float((height - fh) // 2)))
    left = torch.where(any_fit, left, torch.full_like(left, float((width - fw) // 2)))
    return torch.stack([top, left, h, w], dim=1)


def crop_theta(
    boxes: Tensor,
    height: int,
    width: int,
    hflip: Tensor | None = None,
    vflip: Tensor | None = None,
) -> Tensor:
    """[N, 2, 3] ``affine_grid`` thetas for crop boxes [N, 4] = (top, left, h, w) of an H x W image.

    ``hflip`` / ``vflip``: optional [N] bool tensors; flipped samples mirror their crop about its centre.
    Computed on the CPU in float64 (inputs on another device are copied to the CPU).
    """
    boxes = torch.as_tensor(boxes).detach().to("cpu", torch.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape [N, 4] (top, left, height, width), got {tuple(boxes.shape)}")
    n = boxes.shape[0]
    top, left, h, w = boxes.unbind(1)
    sx = torch.ones(n, dtype=torch.float64, device=boxes.device)
    sy = torch.ones_like(sx)
    if hflip is not None:
        sx = torch.where(batch_mask(hflip, n, "hflip").cpu(), -sx, sx)
    if vflip is not None:
        sy = torch.where(batch_mask(vflip, n, "vflip").cpu(), -sy, sy)
    theta = torch.zeros(n, 2, 3, dtype=torch.float64, device=boxes.device)
    theta[:, 0, 0] = sx * w / width
    theta[:, 0, 2] = (2 * left + w) / width - 1
    theta[:, 1, 1] = sy * h / height
    theta[:, 1, 2] = (2 * top + h) / height - 1
    return theta


def crop_grid(
    theta: Tensor,
    size: Sequence[int],
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """``F.affine_grid(theta, size, align_corners=False)`` for axis-aligned thetas, by broadcasting.

    The per-sample x / y coordinate vectors ([N, W'] and [N, H']) are computed in float64 on
    ``theta.device`` (the CPU for :func:`resized_crop`), cast to ``dtype`` and moved to ``device``, where
    they are broadcast into the grid -- so the grid is bit-identical on every device.

    Args:
        theta: [N, 2, 3] with ``theta[:, 0, 1] == theta[:, 1, 0] == 0`` (as built by :func:`crop_theta`).
        size: (N, C, H', W') output size.
        dtype: grid dtype (default ``theta.dtype``); device: grid device (default ``theta.device``).

    Returns:
        [N, H', W', 2] grid of (x, y) normalised sampling coordinates.
    """
    if theta.ndim != 3 or theta.shape[1:] != (2, 3):
        raise ValueError(f"theta must have shape [N, 2, 3], got {tuple(theta.shape)}")
    if bool((theta[:, 0, 1] != 0).any()) or bool((theta[:, 1, 0] != 0).any()):
        raise ValueError("crop_grid needs axis-aligned thetas (zero off-diagonal); use F.affine_grid")
    n, _, oh, ow = (int(v) for v in size)
    dtype = dtype or theta.dtype
    device = theta.device if device is None else device
    th = theta.to(torch.float64)
    kw = dict(dtype=torch.float64, device=theta.device)
    xs = (2 * torch.arange(ow, **kw) + 1) / ow - 1  # output pixel centres, align_corners=False
    ys = (2 * torch.arange(oh, **kw) + 1) / oh - 1
    gx = (th[:, 0, 0, None] * xs + th[:, 0, 2, None]).to(device=device, dtype=dtype)  # [N, W']
    gy = (th[:, 1, 1, None] * ys + th[:, 1, 2, None]).to(device=device, dtype=dtype)  # [N, H']
    grid = torch.empty(n, oh, ow, 2, dtype=dtype, device=device)
    grid[..., 0] = gx[:, None, :]
    grid[..., 1] = gy[:, :, None]
    return grid


def resized_crop(
    images: Tensor,
    boxes: Tensor,
    output_size: int | Sequence[int] | None = None,
    hflip: Tensor | None = None,
    vflip: Tensor | None = None,
    padding_mode: str = "border",
) -> Tensor:
    """Crop per-sample boxes, resize to ``output_size`` and optionally flip -- one ``grid_sample`` call.

    Parameters (thetas, grid) are computed on the CPU in float64 and moved to the images' device.

    Args:
        images: float [N, C, H, W] on any device.
        boxes: [N, 4] (top, left, height, width) in pixels (may be fractional; any device).
        output_size: (H', W') or an int; ``None`` keeps (H, W).
        hflip, vflip: optional [N] bool tensors.
        padding_mode: "border" (default), "zeros" or "reflection"; see the module docstring.

    Returns:
        float [N, C, H', W'] with the dtype / device of ``images``.
    """
    check_images(images)
    if padding_mode not in _PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
    n, c, height, width = images.shape
    oh, ow = _output_size(images, output_size)
    theta = crop_theta(boxes, height, width, hflip, vflip)
    if theta.shape[0] != n:
        raise ValueError(f"boxes must have N={n} rows, got {theta.shape[0]}")
    grid = crop_grid(theta, (n, c, oh, ow), dtype=images.dtype, device=images.device)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)


def random_resized_crop(
    images: Tensor,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    output_size: int | Sequence[int] | None = None,
    hflip_p: float = 0.0,
    vflip_p: float = 0.0,
    generator: torch.Generator | None = None,
    padding_mode: str = "border",
) -> Tensor:
    """RandomResizedCrop + random horizontal / vertical flips on a batch, per-sample parameters.

    Args:
        images: float [N, C, H, W] in [0, 1], any device.
        scale, ratio: as in torchvision (area fraction range, w/h aspect-ratio range).
        output_size: (H', W') or int; ``None`` keeps the input size.
        hflip_p, vflip_p: per-sample flip probabilities.
        generator: CPU ``torch.Generator`` (``None``: torch's default CPU generator). Draw order: crop
            boxes (see :func:`sample_crop_boxes`), then N uniforms for hflip, then N for vflip.
        padding_mode: see :func:`resized_crop`.

    Returns:
        float [N, C, H', W'].
    """
    check_images(images)
    check_generator(generator)
    n, _, height, width = images.shape
    boxes = sample_crop_boxes(n, height, width, scale, ratio, generator)
    hflip = rand(n, generator) < hflip_p
    vflip = rand(n, generator) < vflip_p
    return resized_crop(images, boxes, output_size, hflip, vflip, padding_mode)
