"""Controlled aleatoric ambiguity: does the uncertainty grow when the input is made ambiguous on purpose?

Two protocols whose ground truth is known by construction:

* **Blends** (the VCL paper's controlled-ambiguity protocol): each image is mixed with an image of a
  different class, x = lambda a + (1 - lambda) b. The blend is a lambda : (1 - lambda) mixture of two
  classes, so its label ambiguity is the binary entropy H(lambda) in bits: 0 for lambda = 1 (the original
  image), 1 bit for lambda = 0.5. A good aleatoric uncertainty has a high rank correlation with H(lambda).
* **Centre crops** (URL, Kirchhof et al. 2023): a centre crop resized back to full size shows less of the
  object, so it should be more uncertain than the full image; URL reports the share of images for which it
  is (``croppedHasBiggerUnc``).

:func:`spearman` is re-exported from :mod:`probssl.evaluation.uncertainty` (average ranks for ties).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from probssl.evaluation.uncertainty import spearman

__all__ = [
    "binary_entropy_bits",
    "blend_pairs",
    "center_crops",
    "cropped_has_bigger_uncertainty",
    "different_class_partners",
    "spearman",
]


def binary_entropy_bits(lam: Tensor) -> Tensor:
    """H(lambda) = -lambda log2 lambda - (1 - lambda) log2 (1 - lambda), with 0 log 0 = 0. Same shape as lam."""
    lam = torch.as_tensor(lam, dtype=torch.float64)
    nats = -(torch.special.xlogy(lam, lam) + torch.special.xlogy(1 - lam, 1 - lam))
    return nats / math.log(2)


def different_class_partners(labels: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """For each i, an index j drawn uniformly from the inputs whose label differs from labels[i].

    Shapes: labels [N] -> [N] int64. Vectorised: with the indices sorted by label, class c occupies the
    positions [start_c, start_c + count_c); drawing r uniformly from the N - count_c other positions and
    skipping over that block picks a uniform other-class input.
    """
    labels = torch.as_tensor(labels).detach().cpu().reshape(-1)
    order = torch.argsort(labels, stable=True)
    _, group, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    others = len(labels) - counts[group]  # [N]
    if len(labels) and int(others.min()) == 0:
        raise ValueError("every image needs a partner of a different class, but all labels are equal")
    starts = (counts.cumsum(0) - counts)[group]
    draw = torch.rand(len(labels), generator=generator, dtype=torch.float64)
    r = torch.minimum((draw * others).long(), others - 1)  # min(): rand * n can round up to n
    position = torch.where(r < starts, r, r + counts[group])
    return order[position]


def blend_pairs(
    images: Tensor,
    labels: Tensor,
    lambdas: Sequence[float] = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5),
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Blend every image with one partner of a different class at each lambda.

    Each image i gets ONE partner p(i) (:func:`different_class_partners`) shared by all lambdas, so the
    lambdas differ only in the mixing weight. Shapes: images uint8 [N, C, H, W], labels [N] ->
    (blends float32 [M, C, H, W] in [0, 1], ambiguity [M] float64 = H(lambda) in bits, lambda [M] float64)
    with M = len(lambdas) x N, lambda-major: row l N + i is lambda_l images[i] + (1 - lambda_l) images[p(i)].
    """
    if not isinstance(images, Tensor) or images.ndim != 4 or images.dtype != torch.uint8:
        raise ValueError("images must be a uint8 tensor [N, C, H, W]")
    if len(labels) != len(images):
        raise ValueError(f"images and labels differ in length: {len(images)} vs {len(labels)}")
    lam = torch.as_tensor(list(lambdas), dtype=torch.float64).reshape(-1)
    if not bool(((lam >= 0) & (lam <= 1)).all()):
        raise ValueError(f"lambdas must lie in [0, 1], got {list(lambdas)}")
    partner = different_class_partners(labels, generator).to(images.device)
    a = images.float() / 255
    b = a[partner]
    w = lam.float().to(images.device)[:, None, None, None, None]  # [L, 1, 1, 1, 1]
    blends = (w * a + (1 - w) * b).reshape(-1, *images.shape[1:])
    lam_rows = lam.repeat_interleave(len(images))
    return blends, binary_entropy_bits(lam_rows), lam_rows


def center_crops(images: Tensor, fractions: Sequence[float] = (1.0, 0.8, 0.6, 0.4)) -> Tensor:
    """Square centre crops of side round(f min(H, W)), resized back to H x W bilinearly, for each fraction f.

    As URL's ``validate.py`` (torchvision ``center_crop`` then ``resize``): the crop's top-left corner is
    round((H - side) / 2), round((W - side) / 2). Shapes: images [N, C, H, W] (uint8 is scaled to float32 in
    [0, 1], float is kept) -> [F, N, C, H, W] float. A fraction giving the full side returns a copy.
    """
    if not isinstance(images, Tensor) or images.ndim != 4:
        raise ValueError("images must be a tensor [N, C, H, W]")
    x = images.float() / 255 if images.dtype == torch.uint8 else images
    if not x.is_floating_point():
        raise ValueError("images must be uint8 or floating point")
    height, width = x.shape[-2:]
    out = []
    for f in fractions:
        if not 0 < f <= 1:
            raise ValueError(f"crop fractions must lie in (0, 1], got {f}")
        side = max(1, int(round(f * min(height, width))))
        top, left = int(round((height - side) / 2)), int(round((width - side) / 2))
        crop = x[..., top : top + side, left : left + side]
        if crop.shape[-2:] == x.shape[-2:]:
            out.append(crop.clone())
        else:
            out.append(F.interpolate(crop, size=(height, width), mode="bilinear", align_corners=False))
    return torch.stack(out)


def cropped_has_bigger_uncertainty(u_full, u_crop) -> float:
    """URL's croppedHasBiggerUnc: share of images whose crop is strictly more uncertain than the full image.

    Shapes: u_full [N], u_crop [N] (higher = more uncertain). Ties count as "not bigger", as in URL.
    """
    full = torch.as_tensor(u_full).detach().cpu().reshape(-1).double()
    crop = torch.as_tensor(u_crop).detach().cpu().reshape(-1).double()
    if len(full) != len(crop) or len(full) == 0:
        raise ValueError(f"u_full and u_crop must be non-empty and equally long: {len(full)} vs {len(crop)}")
    return float((full < crop).double().mean())
