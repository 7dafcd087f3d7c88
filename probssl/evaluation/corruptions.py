"""Image corruptions at graded severities, and whether a model's uncertainty rises with them.

A trustworthy uncertainty should grow as the input degrades. Three corruptions probe different kinds of
degradation -- added pixel noise, lost high frequencies, lost content -- each at severities 0 (clean) to 5,
in the spirit of ImageNet-C / CIFAR-10-C (Hendrycks & Dietterich 2019) but defined for small images.

Every op acts on a whole float [N, C, H, W] batch in [0, 1] with per-image randomness drawn on the CPU
from a seedable ``torch.Generator`` (as in ``probssl.augment``), then moved to the images' device.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable

import torch
from torch import Tensor

from probssl.augment import gaussian_blur
from probssl.evaluation.uncertainty import spearman

__all__ = [
    "CORRUPTIONS",
    "SEVERITIES",
    "blur",
    "corrupt",
    "gaussian_noise",
    "occlusion",
    "occlusion_side",
    "uncertainty_vs_severity",
]

CORRUPTIONS = ("gaussian_noise", "blur", "occlusion")

# Parameter of each severity level; index = severity, 0 = clean (identity).
SEVERITIES: dict[str, tuple[float, ...]] = {
    # Standard deviation of i.i.d. Gaussian noise added to every pixel (images in [0, 1]; the result is
    # clipped to [0, 1]). Levels 1-5 are ImageNet-C's gaussian_noise levels.
    "gaussian_noise": (0.0, 0.08, 0.12, 0.18, 0.26, 0.38),
    # Gaussian blur sigma in pixels FOR A 32-PIXEL IMAGE; scaled by min(H, W) / 32 so a level removes the
    # same fraction of the spectrum at any resolution (1.5 px at 32 px = 10.5 px at 224 px). Kernel size
    # 2 * ceil(3 sigma) + 1 (capped by the image size), reflect padding.
    "blur": (0.0, 0.5, 1.0, 1.5, 2.0, 3.0),
    # Side of one square zero-filled patch as a fraction of min(H, W), rounded to whole pixels; the patch
    # lies fully inside the image at a uniformly random position per image. Area 1%, 4%, 9%, 16%, 25%.
    "occlusion": (0.0, 0.1, 0.2, 0.3, 0.4, 0.5),
}

MAX_SEVERITY = 5


def _check(images: Tensor, name: str, severity: int) -> int:
    """Validate the inputs; return the severity as a Python int (numpy / torch integers accepted)."""
    if not isinstance(images, Tensor) or images.ndim != 4 or not images.is_floating_point():
        raise ValueError("images must be a float tensor [N, C, H, W] in [0, 1]")
    try:
        level = operator.index(severity)
    except TypeError:
        level = None
    if level is None or not 0 <= level <= MAX_SEVERITY:
        raise ValueError(f"{name} severity must be an int in 0..{MAX_SEVERITY}, got {severity!r}")
    return level


def gaussian_noise(images: Tensor, severity: int, generator: torch.Generator | None = None) -> Tensor:
    """Add N(0, std^2) noise per pixel, std = ``SEVERITIES["gaussian_noise"][severity]``, clip to [0, 1].

    Shapes: [N, C, H, W] -> [N, C, H, W]. Severity 0 returns an unchanged copy.
    """
    severity = _check(images, "gaussian_noise", severity)
    std = SEVERITIES["gaussian_noise"][severity]
    if std == 0:
        return images.clone()
    noise = torch.randn(images.shape, generator=generator, dtype=images.dtype)  # CPU draw: device-independent
    return (images + std * noise.to(images.device)).clamp_(0, 1)


def blur(images: Tensor, severity: int) -> Tensor:
    """Gaussian blur (``probssl.augment.gaussian_blur``) with sigma = level x min(H, W) / 32 pixels.

    Shapes: [N, C, H, W] -> [N, C, H, W]. Severity 0 returns an unchanged copy.
    """
    severity = _check(images, "blur", severity)
    height, width = images.shape[-2:]
    sigma = SEVERITIES["blur"][severity] * min(height, width) / 32
    if sigma == 0:
        return images.clone()
    # +-3 sigma holds 99.7% of the mass; reflect padding needs kernel_size // 2 < min(H, W).
    kernel_size = min(2 * math.ceil(3 * sigma) + 1, 2 * min(height, width) - 1)
    return gaussian_blur(images, sigma, kernel_size)


def occlusion_side(height: int, width: int, severity: int) -> int:
    """Side in pixels of the occluding square at ``severity``: round(level x min(H, W))."""
    return int(math.floor(SEVERITIES["occlusion"][severity] * min(height, width) + 0.5))


def occlusion(images: Tensor, severity: int, generator: torch.Generator | None = None) -> Tensor:
    """Zero one square patch per image, side :func:`occlusion_side`, at a uniformly random position.

    The top-left corner is uniform over all positions where the patch fits, so exactly side^2 pixels
    (per channel) are zeroed. Vectorised: a row mask [N, H] and a column mask [N, W] are broadcast into
    the patch mask [N, 1, H, W]. Shapes: [N, C, H, W] -> [N, C, H, W].
    """
    severity = _check(images, "occlusion", severity)
    n, _, height, width = images.shape
    side = occlusion_side(height, width, severity)
    if side == 0:
        return images.clone()
    top = torch.randint(0, height - side + 1, (n, 1), generator=generator)
    left = torch.randint(0, width - side + 1, (n, 1), generator=generator)
    rows, cols = torch.arange(height), torch.arange(width)
    in_rows = (rows >= top) & (rows < top + side)  # [N, H]
    in_cols = (cols >= left) & (cols < left + side)  # [N, W]
    patch = (in_rows[:, :, None] & in_cols[:, None, :])[:, None].to(images.device)  # [N, 1, H, W]
    return images.masked_fill(patch, 0.0)


def corrupt(images: Tensor, name: str, severity: int, generator: torch.Generator | None = None) -> Tensor:
    """Apply corruption ``name`` (one of :data:`CORRUPTIONS`) at ``severity`` in 0..5."""
    if name == "gaussian_noise":
        return gaussian_noise(images, severity, generator)
    if name == "blur":
        return blur(images, severity)
    if name == "occlusion":
        return occlusion(images, severity, generator)
    raise ValueError(f"unknown corruption {name!r}; expected one of {CORRUPTIONS}")


def uncertainty_vs_severity(
    score_fn: Callable[[Tensor], Tensor],
    images: Tensor,
    generator: torch.Generator | None = None,
    corruptions: tuple[str, ...] = CORRUPTIONS,
) -> dict[str, dict]:
    """Does the per-image uncertainty grow with the corruption severity?

    For each corruption and severity s = 0..5 the images are corrupted and scored by ``score_fn``
    (images [N, C, H, W] -> per-image uncertainty [N], higher = more uncertain). Severity 0 (clean) is
    scored once and shared by all corruptions.

    "spearman" is the Spearman rank correlation between severity and uncertainty over the pooled 6N
    (severity, uncertainty) pairs: +1 if every image at a higher severity scores above every image at a
    lower one, ~0 if the score ignores the corruption. It mixes the within-image trend with differences
    between images (which dilute rho), so compare it between models on the same images.

    Returns {name: {"severity": [0..5], "mean_uncertainty": [6 floats], "spearman": rho}}.
    """

    def score(x: Tensor) -> Tensor:
        return torch.as_tensor(score_fn(x)).detach().reshape(-1).double().cpu()

    clean = score(images)
    levels = list(range(MAX_SEVERITY + 1))
    out = {}
    for name in corruptions:
        per_level = [clean] + [score(corrupt(images, name, s, generator)) for s in levels[1:]]
        pooled = torch.cat(per_level)
        severity = torch.arange(len(levels), dtype=torch.float64).repeat_interleave(len(clean))
        out[name] = {
            "severity": levels,
            "mean_uncertainty": [float(u.mean()) for u in per_level],
            "spearman": spearman(severity, pooled),
        }
    return out
