"""Augmentation parameters, named recipes and the batched multi-view :class:`Augmenter`."""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from probssl.config import AugmentConfig

from ._utils import check_generator
from .blur import random_gaussian_blur
from .color import binarize, random_color_jitter, random_grayscale, random_solarize
from .geometric import _PADDING_MODES, random_resized_crop

__all__ = ["AugmentParams", "RECIPES", "recipe", "Augmenter", "augmenter_from_config"]

_PROBABILITIES = ("hflip_p", "vflip_p", "jitter_p", "grayscale_p", "blur_p", "solarize_p")
_STRENGTHS = ("brightness", "contrast", "saturation")


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class AugmentParams:
    """Parameters of the SSL augmentation pipeline (applied in this order by :class:`Augmenter`).

    1. random resized crop (``crop_scale``: area fraction, ``crop_ratio``: w/h aspect range) fused with
       horizontal / vertical flips (``hflip_p``, ``vflip_p``);
    2. colour jitter with probability ``jitter_p``: brightness / contrast / saturation factors
       ~ U[max(0, 1 - s), 1 + s], hue shift ~ U[-hue, hue] turns, in a per-sample random order;
    3. random grayscale (``grayscale_p``);
    4. Gaussian blur (``blur_p``, sigma ~ U(``blur_sigma``) pixels, kernel ~10% of the image side);
    5. solarize (``solarize_p``, ``solarize_threshold``);
    6. ``binarize``: x > 0.5 -> 1 else 0.

    Saturation, hue and grayscale act on colour images only (no-ops for C = 1). Sequences are stored
    as tuples (so YAML lists are accepted). Invalid values raise ``ValueError`` naming the field.
    """

    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip_p: float = 0.5
    vflip_p: float = 0.0
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    grayscale_p: float = 0.2
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: float = 0.0
    solarize_threshold: float = 0.5
    binarize: bool = False

    def __post_init__(self) -> None:
        for name in ("crop_scale", "crop_ratio", "blur_sigma"):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
                raise ValueError(f"{name} must be a pair (low, high), got {value!r}")
            if not all(_is_number(v) for v in value):
                raise ValueError(f"{name} must contain finite numbers, got {value!r}")
            value = (float(value[0]), float(value[1]))
            if not (0 < value[0] <= value[1]):
                raise ValueError(f"{name} must satisfy 0 < low <= high, got {value}")
            object.__setattr__(self, name, value)
        if self.crop_scale[1] > 1:
            raise ValueError(f"crop_scale must lie in (0, 1], got {self.crop_scale}")
        for name in _PROBABILITIES:
            value = getattr(self, name)
            if not _is_number(value) or not (0 <= value <= 1):
                raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
        for name in _STRENGTHS:
            value = getattr(self, name)
            if not _is_number(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not _is_number(self.hue) or not (0 <= self.hue <= 0.5):
            raise ValueError(f"hue must be in [0, 0.5], got {self.hue!r}")
        if not _is_number(self.solarize_threshold) or not (0 <= self.solarize_threshold <= 1):
            raise ValueError(f"solarize_threshold must be in [0, 1], got {self.solarize_threshold!r}")
        if not isinstance(self.binarize, bool):
            raise ValueError(f"binarize must be a bool, got {self.binarize!r}")


RECIPES: tuple[str, ...] = ("simclr", "simvae", "none")

_FIELDS = tuple(f.name for f in dataclasses.fields(AugmentParams))


def _recipe_fields(name: str, channels: int) -> dict[str, Any]:
    grey = channels == 1
    no_colour = dict(saturation=0.0, hue=0.0, grayscale_p=0.0)
    if name == "simclr":
        # Chen et al. 2020 (CIFAR variant): RRC + hflip, colour jitter s=0.5 w.p. 0.8, grayscale 0.2, no blur.
        fields: dict[str, Any] = dict(
            crop_scale=(0.08, 1.0),
            crop_ratio=(3 / 4, 4 / 3),
            hflip_p=0.5,
            vflip_p=0.0,
            jitter_p=0.8,
            brightness=0.4,
            contrast=0.4,
            saturation=0.4,
            hue=0.1,
            grayscale_p=0.2,
            blur_p=0.0,
            solarize_p=0.0,
            binarize=False,
        )
        if grey:
            fields.update(no_colour)
        return fields
    if name == "simvae":
        # Bizeul et al. 2024: RRC scale (0.4, 1), ratio (0.75, 1.3), vertical flips; grey images are
        # binarised without jitter; colour images always get jitter (strengths of the reference code).
        fields = dict(
            crop_scale=(0.4, 1.0),
            crop_ratio=(0.75, 1.3),
            hflip_p=0.0,
            vflip_p=0.5,
            grayscale_p=0.0,
            blur_p=0.0,
            solarize_p=0.0,
        )
        if grey:
            fields.update(jitter_p=0.0, brightness=0.0, contrast=0.0, binarize=True, **no_colour)
        else:
            fields.update(jitter_p=1.0, brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2, binarize=False)
        return fields
    if name == "none":
        return dict(
            crop_scale=(1.0, 1.0),
            crop_ratio=(1.0, 1.0),
            hflip_p=0.0,
            vflip_p=0.0,
            jitter_p=0.0,
            brightness=0.0,
            contrast=0.0,
            saturation=0.0,
            hue=0.0,
            grayscale_p=0.0,
            blur_p=0.0,
            solarize_p=0.0,
            binarize=False,
        )
    raise ValueError(f"unknown augmentation recipe {name!r}; valid recipes: {', '.join(RECIPES)}")


def recipe(name: str, channels: int, **overrides: Any) -> AugmentParams:
    """Named augmentation recipe for images with ``channels`` (1 or 3) channels, with field overrides.

    * ``"simclr"`` -- SimCLR (Chen et al. 2020), CIFAR variant: RRC scale (0.08, 1), ratio (3/4, 4/3),
      hflip 0.5, colour jitter (0.4, 0.4, 0.4, 0.1) w.p. 0.8, grayscale 0.2, no blur (pass
      ``blur_p=0.5`` for ImageNet-size images). Grey images: saturation, hue and grayscale set to 0.
    * ``"simvae"`` -- SimVAE (Bizeul et al. 2024): RRC scale (0.4, 1), ratio (0.75, 1.3), vflip 0.5,
      no hflip. Grey images: ``binarize=True`` and no jitter. Colour images: colour jitter always on
      (``jitter_p=1``) with the reference code's strengths (0.8, 0.8, 0.8, 0.2), no grayscale, no binarize.
    * ``"none"`` -- identity: crop scale (1, 1), ratio (1, 1), every probability 0. (The crop is the
      identity for square images; for non-square ones ratio (1, 1) means a central square crop, as in
      torchvision -- override ``crop_ratio`` with the image's w/h to keep it whole.)

    Raises ``ValueError`` for an unknown ``name`` (listing :data:`RECIPES`), an unknown override key
    (listing the valid fields) or ``channels`` not in (1, 3).
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    fields = _recipe_fields(name, channels)
    unknown = sorted(set(overrides) - set(_FIELDS))
    if unknown:
        raise ValueError(f"unknown AugmentParams field(s) {unknown}; valid fields: {', '.join(_FIELDS)}")
    fields.update(overrides)
    return AugmentParams(**fields)


def _crop_is_identity(params: AugmentParams, height: int, width: int, out: tuple[int, int]) -> bool:
    """True when every sampled crop is the whole image, unflipped and not resized (so it can be skipped)."""
    if out != (height, width) or params.hflip_p > 0 or params.vflip_p > 0 or params.crop_scale != (1.0, 1.0):
        return False
    r_lo, r_hi = params.crop_ratio
    if r_lo != r_hi:
        return False
    area = height * width
    return round(math.sqrt(area * r_lo)) == width and round(math.sqrt(area / r_lo)) == height


class Augmenter:
    """Batched multi-view augmentation: ``Augmenter(params)(images, views=2, generator=g)``.

    Every op runs once on the stacked ``[views * N, C, H, W]`` batch (``images.repeat(views, 1, 1, 1)``,
    so row ``v * N + i`` is view ``v`` of image ``i``) with per-sample parameters drawn from a CPU
    generator, so a seed gives identical results on any device. Draw order: crop boxes and flips
    (:func:`random_resized_crop`), colour jitter (:func:`random_color_jitter`), grayscale, blur,
    solarize. Ops that cannot change anything (probability 0, colour ops on grey images, an identity
    crop) are skipped and draw nothing. Ops after the crop work in place on the stacked batch.

    Args:
        params: :class:`AugmentParams`.
        output_size: (H', W') or int of the output views; ``None`` keeps the input size.
        padding_mode: ``grid_sample`` padding of the crop ("border" default, "zeros", "reflection"); only
            affects the half-pixel border reached when up-sampling a crop.
    """

    def __init__(
        self,
        params: AugmentParams,
        output_size: tuple[int, int] | int | None = None,
        padding_mode: str = "border",
    ) -> None:
        if not isinstance(params, AugmentParams):
            raise TypeError(f"params must be an AugmentParams, got {type(params).__name__}")
        if output_size is not None:
            if isinstance(output_size, int):
                output_size = (output_size, output_size)
            output_size = tuple(int(s) for s in output_size)
            if len(output_size) != 2 or min(output_size) <= 0:
                raise ValueError(f"output_size must be two positive ints, got {output_size}")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        self.params = params
        self.output_size: tuple[int, int] | None = output_size
        self.padding_mode = padding_mode

    def __repr__(self) -> str:
        return f"Augmenter({self.params!r}, output_size={self.output_size}, padding_mode={self.padding_mode!r})"

    def __call__(self, images: Tensor, views: int = 2, generator: torch.Generator | None = None) -> Tensor:
        """Augment ``views`` independent views of every image.

        Args:
            images: [N, C, H, W] float in [0, 1] or uint8 in [0, 255] (divided by 255), C = 1 or 3.
            views: number of views (>= 1).
            generator: CPU ``torch.Generator``; ``None`` uses torch's default CPU generator.

        Returns:
            float [views, N, C, H', W'] in [0, 1] (float32 for uint8 input, else the input dtype).
        """
        if not isinstance(images, Tensor) or images.ndim != 4:
            raise ValueError(f"images must be a [N, C, H, W] tensor, got {getattr(images, 'shape', type(images))}")
        if images.dtype == torch.uint8:
            images = images.float().div_(255)
        elif not images.is_floating_point():
            raise TypeError(f"images must be float in [0, 1] or uint8, got {images.dtype}")
        if images.shape[1] not in (1, 3):
            raise ValueError(f"images must have 1 or 3 channels, got {images.shape[1]}")
        try:
            n_views = operator.index(views)
        except TypeError:
            n_views = 0
        if isinstance(views, bool) or n_views < 1:
            raise ValueError(f"views must be an int >= 1, got {views!r}")
        views = n_views
        check_generator(generator)

        p = self.params
        n, c, height, width = images.shape
        out_size = self.output_size or (height, width)
        if views > 1:
            x = images.repeat(views, 1, 1, 1)
        else:
            x = images.clone(memory_format=torch.contiguous_format)
        if not _crop_is_identity(p, height, width, out_size):
            x = random_resized_crop(
                x, p.crop_scale, p.crop_ratio, out_size, p.hflip_p, p.vflip_p, generator, self.padding_mode
            )
        colour = c == 3
        strengths = (p.brightness, p.contrast) + ((p.saturation, p.hue) if colour else (0.0, 0.0))
        if p.jitter_p > 0 and any(s > 0 for s in strengths):
            x = random_color_jitter(x, *strengths, p=p.jitter_p, random_order=True, generator=generator, inplace=True)
        if colour and p.grayscale_p > 0:
            x = random_grayscale(x, p.grayscale_p, generator, inplace=True)
        if p.blur_p > 0:
            x = random_gaussian_blur(x, p.blur_sigma, p.blur_p, generator=generator, inplace=True)
        if p.solarize_p > 0:
            x = random_solarize(x, p.solarize_p, p.solarize_threshold, generator, inplace=True)
        if p.binarize:
            x = binarize(x)
        # x is a fresh contiguous tensor owned here (repeat / grid_sample output), so ops work in place.
        return x.clamp_(0, 1).reshape(views, n, c, *out_size)


# AugmentConfig fields that choose the recipe and the views rather than overriding an AugmentParams value.
_PIPELINE_KEYS = ("recipe", "views", "clean_first_view")


def augmenter_from_config(config: AugmentConfig, image_shape: tuple[int, int, int]) -> Augmenter:
    """The :class:`Augmenter` of a config's ``augment`` section for images of ``image_shape`` [C, H, W]:
    the recipe, then every field that is set (not None) as an override of its :class:`AugmentParams` value."""
    overrides = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name not in _PIPELINE_KEYS and value is not None:
            overrides[f.name] = tuple(value) if isinstance(value, list) else value
    return Augmenter(recipe(config.recipe, image_shape[0], **overrides), output_size=image_shape[1:])
