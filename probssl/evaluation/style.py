"""Content vs style: what does a representation keep about HOW an image was rendered?

Content is the class label. Style is the parameter of a known transformation applied to the test images
(rotation angle, scale, horizontal shift, brightness, stroke thickness): each image gets one random
parameter, the parameter is binned into classes, and a linear probe on the representation of the
transformed images predicts the bin. Invariance-seeking objectives (SimCLR-style augmentation
invariance) are expected to discard style that their augmentations vary; generative ones to keep it.

Every task varies ONE factor with the rest of the image untouched, draws parameters uniformly so the bins
are balanced (chance = 1 / num_bins), and runs batched: geometric tasks are one ``affine_grid`` +
``grid_sample`` call on the whole batch (bilinear, zero padding = black background, the usual background
of digit images), photometric / morphological ones are tensor ops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from probssl.augment import adjust_brightness
from probssl.evaluation.probes import linear_probe

__all__ = [
    "STYLE_TASKS",
    "StyleTask",
    "apply_style",
    "content_style_probes",
    "make_style_dataset",
    "style_labels",
    "style_probe",
]


@dataclass(frozen=True)
class StyleTask:
    name: str
    low: float  # parameter range [low, high]
    high: float
    num_bins: int
    discrete: bool  # True: parameter is an integer in {low, ..., high}, one class per value
    description: str


STYLE_TASKS: dict[str, StyleTask] = {
    t.name: t
    for t in (
        StyleTask(
            "rotation",
            -45.0,
            45.0,
            5,
            False,
            "rotation about the image centre by an angle in degrees ~ U[-45, 45] (positive = clockwise on "
            "screen), 5 equal bins of 18 degrees",
        ),
        StyleTask(
            "scale",
            0.6,
            1.2,
            5,
            False,
            "zoom of the content about the image centre by a factor ~ U[0.6, 1.2] (< 1 shrinks it inside a "
            "black border, > 1 enlarges it and crops the edges), 5 equal bins of 0.12",
        ),
        StyleTask(
            "translation_x",
            -0.2,
            0.2,
            5,
            False,
            "horizontal shift of the content by a fraction of the width ~ U[-0.2, 0.2] (positive = right; "
            "the uncovered strip is black), 5 equal bins of 0.08",
        ),
        StyleTask(
            "brightness",
            0.4,
            1.0,
            5,
            False,
            "multiplication of every pixel by a factor ~ U[0.4, 1.0] (probssl.augment.adjust_brightness), "
            "5 equal bins of 0.12",
        ),
        StyleTask(
            "thickness",
            -1,
            1,
            3,
            True,
            "grey images only: stroke thickness changed by a morphological operation with a 3x3 square "
            "of radius r ~ U{-1, 0, 1}: r = 1 dilation (3x3 max-pool: bright strokes grow by one pixel "
            "on each side), r = -1 erosion (3x3 min-pool: they shrink), r = 0 unchanged; 3 classes",
        ),
    )
}


def _task(task: str) -> StyleTask:
    if task not in STYLE_TASKS:
        raise ValueError(f"unknown style task {task!r}; expected one of {tuple(STYLE_TASKS)}")
    return STYLE_TASKS[task]


def _to_float(images: Tensor) -> Tensor:
    if images.ndim != 4:
        raise ValueError(f"images must have shape [N, C, H, W], got {tuple(images.shape)}")
    return images.float() / 255 if images.dtype == torch.uint8 else images.float()


def style_labels(task: str, values: Tensor) -> Tensor:
    """Bin parameters ``values`` [N] of ``task`` into class labels [N] int64 in [0, num_bins)."""
    spec = _task(task)
    values = torch.as_tensor(values, dtype=torch.float64)
    if spec.discrete:
        return (values.round() - spec.low).long()
    fraction = (values - spec.low) / (spec.high - spec.low)
    return (fraction * spec.num_bins).floor().long().clamp(0, spec.num_bins - 1)  # high itself -> last bin


def _affine(images: Tensor, theta: Tensor) -> Tensor:
    """Resample ``images`` [N, C, H, W] at ``F.affine_grid(theta [N, 2, 3])`` (output -> input coordinates)."""
    theta = theta.to(device=images.device, dtype=images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def apply_style(images: Tensor, task: str, values: Tensor) -> Tensor:
    """Transform each image with its own parameter.

    Args:
        images: [N, C, H, W], uint8 (0..255) or float in [0, 1].
        task: a key of :data:`STYLE_TASKS`.
        values: [N] parameters in the task's units (degrees, zoom factor, fraction of the width,
            brightness factor, morphological radius).
    Returns:
        float32 [N, C, H, W] in [0, 1]. A neutral parameter (0 degrees, zoom 1, shift 0, factor 1, radius 0)
        returns the image (geometric tasks up to float rounding of the sampling grid).
    """
    spec, x = _task(task), _to_float(images)
    values = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    n, c, height, width = x.shape
    if values.shape != (n,):
        raise ValueError(f"values must have shape [N]=[{n}], got {tuple(values.shape)}")
    if spec.name == "brightness":
        return adjust_brightness(x, values.to(x.device))
    if spec.name == "thickness":
        if c != 1:
            raise ValueError(f"thickness is defined for grey images (C = 1), got C = {c}")
        radius = values.round().to(x.device).view(n, 1, 1, 1)
        dilated = F.max_pool2d(x, 3, stride=1, padding=1)  # padding counts as -inf: borders unaffected
        eroded = -F.max_pool2d(-x, 3, stride=1, padding=1)
        return torch.where(radius > 0, dilated, torch.where(radius < 0, eroded, x))
    # Geometric: theta maps normalised OUTPUT coordinates (x right, y down, [-1, 1] edge to edge) to the
    # input coordinates sampled there, so it is the INVERSE of the transformation of the content.
    theta = torch.zeros(n, 2, 3, dtype=torch.float64)
    if spec.name == "rotation":
        # Rotate in pixel units (normalised x and y have different pixel sizes unless H = W): the output pixel
        # at offset p from the centre samples the input at R(-angle) p.
        angle = torch.deg2rad(values)
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta[:, 0, 0], theta[:, 0, 1] = cos, sin * height / width
        theta[:, 1, 0], theta[:, 1, 1] = -sin * width / height, cos
    elif spec.name == "scale":
        theta[:, 0, 0] = theta[:, 1, 1] = 1 / values
    elif spec.name == "translation_x":
        theta[:, 0, 0] = theta[:, 1, 1] = 1.0
        theta[:, 0, 2] = -2 * values  # the normalised width is 2: content moves right by values * W pixels
    return _affine(x, theta)


def make_style_dataset(images: Tensor, task: str, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Draw one parameter per image (uniform over the task's range / values), transform, and bin.

    Args:
        images: [N, C, H, W] uint8 or float in [0, 1].
        generator: CPU generator for the parameters (N draws).
    Returns:
        (transformed float32 images [N, C, H, W], style labels [N] int64 in [0, num_bins)).
    """
    spec = _task(task)
    n = len(images)
    if spec.discrete:
        values = torch.randint(int(spec.low), int(spec.high) + 1, (n,), generator=generator).double()
    else:
        values = spec.low + (spec.high - spec.low) * torch.rand(n, generator=generator, dtype=torch.float64)
    return apply_style(images, task, values), style_labels(task, values)


def _represent(represent_fn: Callable[[Tensor], Tensor], images: Tensor, batch_size: int) -> Tensor:
    """represent_fn over mini-batches (bounded memory for big encoders) -> [N, D] float CPU tensor."""
    with torch.no_grad():
        parts = [
            torch.as_tensor(represent_fn(images[i : i + batch_size])).detach().float().cpu()
            for i in range(0, len(images), batch_size)
        ]
    z = torch.cat(parts)
    return z[:, None] if z.ndim == 1 else z.flatten(1)


def _split_validation(n: int, val_fraction: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    perm = torch.randperm(n, generator=generator)
    num_val = max(1, int(round(val_fraction * n)))
    return perm[num_val:], perm[:num_val]


def style_probe(
    represent_fn: Callable[[Tensor], Tensor],
    train_images: Tensor,
    test_images: Tensor,
    task: str,
    seed: int = 0,
    val_fraction: float = 0.1,
    batch_size: int = 1024,
    weight_decays=(0.0, 1e-5, 1e-4, 1e-3, 1e-2),
) -> dict:
    """Linear-probe accuracy for the style bin of ``task`` from the representation.

    Both splits are transformed with independent random parameters (one generator seeded with ``seed``,
    train drawn first); a random ``val_fraction`` of the transformed TRAIN set selects the probe's weight
    decay (``probes.linear_probe``), and the test set is scored once.

    Args:
        represent_fn: images float [B, C, H, W] in [0, 1] -> representations [B, D]; called on batches of
            ``batch_size`` without gradients.
        train_images, test_images: [N, C, H, W] uint8 or float.
    Returns:
        {"task", "acc" (test), "val_acc", "chance" (= 1 / num_bins: bins are balanced by construction),
        "num_bins", "weight_decay"}.
    """
    spec = _task(task)
    generator = torch.Generator().manual_seed(seed)
    train_x, train_y = make_style_dataset(train_images, task, generator)
    test_x, test_y = make_style_dataset(test_images, task, generator)
    fit_rows, val_rows = _split_validation(len(train_x), val_fraction, generator)
    z_train, z_test = _represent(represent_fn, train_x, batch_size), _represent(represent_fn, test_x, batch_size)
    result = linear_probe(
        z_train[fit_rows],
        train_y[fit_rows],
        z_train[val_rows],
        train_y[val_rows],
        z_test,
        test_y,
        weight_decays=weight_decays,
    )
    return {
        "task": task,
        "acc": result.test_acc,
        "val_acc": result.val_acc,
        "chance": 1 / spec.num_bins,
        "num_bins": spec.num_bins,
        "weight_decay": result.selected["weight_decay"],
    }


def content_style_probes(
    represent_fn: Callable[[Tensor], Tensor],
    train_images: Tensor,
    train_labels: Tensor,
    test_images: Tensor,
    test_labels: Tensor,
    tasks: tuple[str, ...] | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    batch_size: int = 1024,
) -> dict[str, dict]:
    """Content probe (class label of the clean images) next to every style probe, on the same images.

    ``tasks`` defaults to every task defined for the images' channel count (thickness only for C = 1).
    Returns {"content": {"acc", "val_acc", "chance", "num_bins", "weight_decay"}, task: style_probe(...)}.
    The content chance level is the majority-class frequency of the test labels.
    """
    channels = train_images.shape[1]
    if tasks is None:
        tasks = tuple(t for t in STYLE_TASKS if t != "thickness" or channels == 1)
    generator = torch.Generator().manual_seed(seed)
    fit_rows, val_rows = _split_validation(len(train_images), val_fraction, generator)
    z_train = _represent(represent_fn, _to_float(train_images), batch_size)
    z_test = _represent(represent_fn, _to_float(test_images), batch_size)
    train_labels, test_labels = train_labels.long(), test_labels.long()
    content = linear_probe(
        z_train[fit_rows], train_labels[fit_rows], z_train[val_rows], train_labels[val_rows], z_test, test_labels
    )
    out = {
        "content": {
            "acc": content.test_acc,
            "val_acc": content.val_acc,
            "chance": float(torch.bincount(test_labels).max()) / len(test_labels),
            "num_bins": int(max(train_labels.max(), test_labels.max())) + 1,
            "weight_decay": content.selected["weight_decay"],
        }
    }
    for i, task in enumerate(tasks):
        out[task] = style_probe(
            represent_fn,
            train_images,
            test_images,
            task,
            seed=seed + 1 + i,
            val_fraction=val_fraction,
            batch_size=batch_size,
        )
    return out
