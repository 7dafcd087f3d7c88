"""Photometric augmentations on batches of [N, C, H, W] images in [0, 1] (C = 1 or 3).

All functions are vectorised over the batch and take per-sample parameters as a Python scalar (same
value for every sample) or an [N] tensor (any device; moved to the images' device). Results are
clamped to [0, 1]. Semantics follow ``torchvision.transforms.functional``:

* brightness: ``x * f``
* contrast:   ``f * x + (1 - f) * mean(gray(x))`` (per-image mean of the grayscale image)
* saturation: ``f * x + (1 - f) * gray(x)`` (identity for C = 1)
* hue:        RGB -> HSV, ``h <- (h + shift) mod 1``, HSV -> RGB (identity for C = 1); ``shift`` is in
  turns, so a shift of 1.0 is the identity
* grayscale:  ITU-R 601-2 luma ``0.299 R + 0.587 G + 0.114 B``
* solarize:   ``1 - x`` where ``x >= threshold``
* binarize:   ``1`` where ``x > threshold`` else ``0``
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._utils import apply_to_subset, batch_mask, batch_param, check_generator, check_images, rand, uniform

__all__ = [
    "GRAY_WEIGHTS",
    "rgb_to_grayscale",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_saturation",
    "adjust_hue",
    "rgb_to_hsv",
    "hsv_to_rgb",
    "color_jitter",
    "random_color_jitter",
    "random_grayscale",
    "solarize",
    "random_solarize",
    "binarize",
]

GRAY_WEIGHTS: tuple[float, float, float] = (0.299, 0.587, 0.114)
"""ITU-R 601-2 luma weights (R, G, B), as in PIL / torchvision."""

_CHANNELS = (1, 3)
BRIGHTNESS, CONTRAST, SATURATION, HUE = 0, 1, 2, 3


def rgb_to_grayscale(images: Tensor, num_output_channels: int = 1) -> Tensor:
    """[N, 3, H, W] -> [N, num_output_channels, H, W] luma with :data:`GRAY_WEIGHTS`.

    A 1-channel input is already grey and is returned as is (expanded to 3 channels if asked). The
    3-channel result is a broadcast view: call ``.contiguous()`` before writing into it.
    """
    check_images(images, channels=_CHANNELS)
    if num_output_channels not in (1, 3):
        raise ValueError(f"num_output_channels must be 1 or 3, got {num_output_channels}")
    if images.shape[1] == 1:
        gray = images
    else:
        r, g, b = images.unbind(1)
        gray = (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b).unsqueeze(1)
    return gray.expand(-1, num_output_channels, -1, -1) if num_output_channels == 3 else gray


def _blend(a: Tensor, b: Tensor, factor: Tensor) -> Tensor:
    """``factor * a + (1 - factor) * b`` clamped to [0, 1]."""
    return (factor * a + (1 - factor) * b).clamp_(0, 1)


def adjust_brightness(images: Tensor, factor: float | Tensor) -> Tensor:
    """``images * factor`` clamped; ``factor``: scalar or [N]. Factor 1 is the identity."""
    check_images(images, channels=_CHANNELS)
    return (images * batch_param(factor, images, "factor")).clamp_(0, 1)


def adjust_contrast(images: Tensor, factor: float | Tensor) -> Tensor:
    """Blend with the per-image mean grey level; ``factor``: scalar or [N]. 1 = identity, 0 = flat grey."""
    check_images(images, channels=_CHANNELS)
    mean = rgb_to_grayscale(images).mean(dim=(-3, -2, -1), keepdim=True)
    return _blend(images, mean, batch_param(factor, images, "factor"))


def adjust_saturation(images: Tensor, factor: float | Tensor) -> Tensor:
    """Blend with the grayscale image; ``factor``: scalar or [N]. 1 = identity, 0 = grayscale.

    Identity for 1-channel images.
    """
    check_images(images, channels=_CHANNELS)
    if images.shape[1] == 1:
        return images
    return _blend(images, rgb_to_grayscale(images), batch_param(factor, images, "factor"))


def _tiny(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).tiny


def _hue6(images: Tensor, maxc: Tensor, delta: Tensor) -> Tensor:
    """6 * hue in [-1, 5) as an [N, 1, H, W] tensor (0 for grey pixels), branch-free.

    ``torch.where`` on bool masks is slow on CPU, so the max channel (first of R, G, B on ties, like
    ``colorsys``) is selected with float 0/1 masks.
    """
    dt = images.dtype
    r, g, b = images[:, 0:1], images[:, 1:2], images[:, 2:3]
    is_r = (r == maxc).to(dt)
    is_g = (g == maxc).to(dt).mul_(1 - is_r)
    is_b = (1 - is_r).sub_(is_g)
    h6 = torch.sub(g, b).mul_(is_r)
    h6.addcmul_(torch.sub(b, r).add_(delta, alpha=2), is_g)
    h6.addcmul_(torch.sub(r, g).add_(delta, alpha=4), is_b)
    return h6.div_(delta.clamp(min=_tiny(dt)))


def _hue_to_rgb(h6: Tensor, minc: Tensor, delta: Tensor) -> Tensor:
    """RGB from 6 * hue in [0, 6), the min channel and the chroma (max - min), all [N, 1, H, W].

    The fully saturated colour of hue H is R = clamp(|H-3| - 1), G = clamp(2 - |H-2|), B = clamp(2 - |H-4|)
    (clamped to [0, 1]); the pixel is ``min + chroma * colour``.
    """
    kw = dict(dtype=h6.dtype, device=h6.device)
    centre = torch.tensor([3.0, 2.0, 4.0], **kw).view(1, 3, 1, 1)
    sign = torch.tensor([1.0, -1.0, -1.0], **kw).view(1, 3, 1, 1)
    offset = torch.tensor([-1.0, 2.0, 2.0], **kw).view(1, 3, 1, 1)
    colour = (h6 - centre).abs_().mul_(sign).add_(offset).clamp_(0, 1)
    return colour.mul_(delta).add_(minc)


def rgb_to_hsv(images: Tensor) -> Tensor:
    """[N, 3, H, W] RGB in [0, 1] -> HSV in [0, 1] (hue in turns), vectorised; matches ``colorsys``."""
    check_images(images, channels=(3,))
    maxc = images.amax(dim=1, keepdim=True)
    minc = images.amin(dim=1, keepdim=True)
    delta = maxc - minc
    h = torch.remainder(_hue6(images, maxc, delta), 6.0).div_(6.0)
    s = delta / maxc.clamp(min=_tiny(images.dtype))
    return torch.cat([h, s, maxc], dim=1)


def hsv_to_rgb(hsv: Tensor) -> Tensor:
    """[N, 3, H, W] HSV (hue in turns, any real value; s, v in [0, 1]) -> RGB, vectorised."""
    check_images(hsv, "hsv", channels=(3,))
    h, s, v = hsv[:, 0:1], hsv[:, 1:2], hsv[:, 2:3]
    delta = v * s
    return _hue_to_rgb(torch.remainder(h * 6.0, 6.0), v - delta, delta)


def adjust_hue(images: Tensor, shift: float | Tensor) -> Tensor:
    """Rotate the hue by ``shift`` turns (scalar or [N]; any real value, 1.0 = full turn = identity).

    Same result as RGB -> HSV, ``h <- (h + shift) mod 1``, HSV -> RGB, computed without materialising
    HSV (value and chroma are unchanged by a hue rotation). Identity for 1-channel images.
    """
    check_images(images, channels=_CHANNELS)
    if images.shape[1] == 1:
        return images
    maxc = images.amax(dim=1, keepdim=True)
    minc = images.amin(dim=1, keepdim=True)
    delta = maxc - minc
    h6 = _hue6(images, maxc, delta).add_(6.0 * batch_param(shift, images, "shift"))
    return _hue_to_rgb(torch.remainder(h6, 6.0), minc, delta).clamp_(0, 1)


_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)
_IDENTITY = (1.0, 1.0, 1.0, 0.0)


def color_jitter(
    images: Tensor,
    brightness: Tensor | None = None,
    contrast: Tensor | None = None,
    saturation: Tensor | None = None,
    hue: Tensor | None = None,
    order: Tensor | None = None,
    inplace: bool = False,
) -> Tensor:
    """Apply per-sample colour-jitter factors, each op in a per-sample order, clamping after each op.

    Args:
        images: float [N, C, H, W], C = 1 or 3 (saturation / hue are no-ops for C = 1).
        brightness, contrast, saturation: [N] factors (1 = identity) or None (skip).
        hue: [N] shifts in turns (0 = identity) or None (skip).
        order: [N, 4] int tensor, each row a permutation of (0, 1, 2, 3) = (brightness, contrast,
            saturation, hue) giving that sample's order of application; None = that fixed order.
        inplace: write into ``images`` (which must own its memory) instead of a copy.

    Each op runs once per stage on the sub-batch of samples that apply it at that stage with a
    non-identity parameter (4 stages x 4 ops = at most 16 batched calls; no per-image loop). Samples
    whose parameters are all identities are returned unchanged (bit-exact).
    """
    check_images(images, channels=_CHANNELS)
    n = images.shape[0]
    factors = (brightness, contrast, saturation, hue)
    active = []
    for i, f in enumerate(factors):
        if f is None or (images.shape[1] == 1 and i in (SATURATION, HUE)):
            active.append(None)
            continue
        f = torch.as_tensor(f)
        if f.shape != (n,):
            raise ValueError(f"jitter factors must have shape [N]=[{n}], got {tuple(f.shape)}")
        active.append(f)
    if order is None:
        order = torch.arange(4).expand(n, 4)
    order = torch.as_tensor(order)
    if order.shape != (n, 4):
        raise ValueError(f"order must have shape [N, 4]=[{n}, 4], got {tuple(order.shape)}")
    order = order.cpu()
    if n and not torch.equal(order.sort(dim=1).values, torch.arange(4).expand(n, 4).to(order.dtype)):
        raise ValueError("every row of order must be a permutation of (0, 1, 2, 3)")
    out = None
    for stage in range(4):
        for op_id, f in enumerate(active):
            if f is None:
                continue
            sel = (order[:, stage] == op_id) & (f != _IDENTITY[op_id]).cpu()
            if not sel.any():
                continue
            if out is None:
                out = images if inplace else images.clone()  # then every op writes its rows in place
            apply_to_subset(out, sel, _OPS[op_id], f, inplace=True)
    return images if out is None else out


def random_color_jitter(
    images: Tensor,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    hue: float = 0.1,
    p: float = 1.0,
    random_order: bool = True,
    generator: torch.Generator | None = None,
    inplace: bool = False,
) -> Tensor:
    """torchvision ``RandomApply([ColorJitter(b, c, s, h)], p)`` on a batch, per-sample parameters.

    Factors ~ U[max(0, 1 - b), 1 + b] (same for contrast, saturation), hue shift ~ U[-h, h]; with
    ``random_order`` each sample applies the four ops in its own random order (as torchvision does).
    Draw order from the CPU ``generator``: N (apply), 4 x N (b, c, s, h factors), N x 4 (order, only if
    ``random_order``). A strength of 0 disables that op. ``inplace``: see :func:`color_jitter`.
    """
    check_images(images, channels=_CHANNELS)
    check_generator(generator)
    n = images.shape[0]
    applied = rand(n, generator) < p
    b = uniform(n, max(0.0, 1 - brightness), 1 + brightness, generator)
    c = uniform(n, max(0.0, 1 - contrast), 1 + contrast, generator)
    s = uniform(n, max(0.0, 1 - saturation), 1 + saturation, generator)
    h = uniform(n, -hue, hue, generator)
    order = rand((n, 4), generator).argsort(dim=1) if random_order else None
    one, zero = torch.ones_like(b), torch.zeros_like(h)
    b = torch.where(applied & (brightness > 0), b, one)
    c = torch.where(applied & (contrast > 0), c, one)
    s = torch.where(applied & (saturation > 0), s, one)
    h = torch.where(applied & (hue > 0), h, zero)
    return color_jitter(images, b, c, s, h, order, inplace=inplace)


def random_grayscale(
    images: Tensor, p: float = 0.2, generator: torch.Generator | None = None, inplace: bool = False
) -> Tensor:
    """Per sample, with probability ``p`` replace an RGB image by its grayscale (kept 3-channel).

    Identity for 1-channel images (no draws). Draws N uniforms from the CPU ``generator``.
    ``inplace``: write the selected rows into ``images`` instead of a copy.
    """
    check_images(images, channels=_CHANNELS)
    check_generator(generator)
    if images.shape[1] == 1:
        return images
    mask = rand(images.shape[0], generator) < p
    return apply_to_subset(images, mask, lambda x: rgb_to_grayscale(x, 3).contiguous(), inplace=inplace)


def solarize(images: Tensor, threshold: float = 0.5, mask: Tensor | None = None, inplace: bool = False) -> Tensor:
    """``1 - x`` where ``x >= threshold`` (torchvision semantics).

    ``mask``: optional [N] bool tensor of the rows to solarize (others are left as they are);
    ``inplace``: write into ``images`` instead of a copy.
    """
    check_images(images)

    def _solarize(x: Tensor) -> Tensor:
        return torch.where(x >= threshold, 1.0 - x, x)

    if mask is None:
        mask = torch.ones(images.shape[0], dtype=torch.bool)
    return apply_to_subset(images, batch_mask(mask, images.shape[0]).cpu(), _solarize, inplace=inplace)


def random_solarize(
    images: Tensor,
    p: float = 0.0,
    threshold: float = 0.5,
    generator: torch.Generator | None = None,
    inplace: bool = False,
) -> Tensor:
    """Solarize each sample with probability ``p``. Draws N uniforms from the CPU ``generator``."""
    check_images(images)
    check_generator(generator)
    return solarize(images, threshold, rand(images.shape[0], generator) < p, inplace=inplace)


def binarize(images: Tensor, threshold: float = 0.5) -> Tensor:
    """``1.0`` where ``x > threshold`` else ``0.0`` (same dtype as ``images``)."""
    check_images(images)
    return (images > threshold).to(images.dtype)
