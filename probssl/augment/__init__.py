"""Batched, device-agnostic SSL augmentations (pure torch).

Every op acts on a whole float [N, C, H, W] batch in [0, 1] (C = 1 or 3) on any device, with per-sample
parameters drawn on the CPU from a seedable ``torch.Generator`` and then moved to the images' device, so
a seed gives the same result on CPU and GPU. There is no per-image Python loop.

Typical use::

    aug = Augmenter(recipe("simclr", channels=3))
    views = aug(images, views=2, generator=torch.Generator().manual_seed(0))  # [2, N, 3, H, W]
"""
from .blur import default_kernel_size, gaussian_blur, gaussian_kernel1d, random_gaussian_blur
from .color import (
    GRAY_WEIGHTS,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    binarize,
    color_jitter,
    hsv_to_rgb,
    random_color_jitter,
    random_grayscale,
    random_solarize,
    rgb_to_grayscale,
    rgb_to_hsv,
    solarize,
)
from .geometric import crop_grid, crop_theta, random_resized_crop, resized_crop, sample_crop_boxes
from .pipeline import RECIPES, AugmentParams, Augmenter, recipe

__all__ = [
    "AugmentParams",
    "Augmenter",
    "RECIPES",
    "recipe",
    # geometric
    "sample_crop_boxes",
    "crop_theta",
    "crop_grid",
    "resized_crop",
    "random_resized_crop",
    # colour
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
    # blur
    "default_kernel_size",
    "gaussian_kernel1d",
    "gaussian_blur",
    "random_gaussian_blur",
]
