"""Frozen-feature extraction: batched, no augmentation, eval mode, no gradients."""

from __future__ import annotations

import torch
from torch import Tensor

from probssl.data import to_float_images
from probssl.methods import Method
from probssl.train import autocast


@torch.no_grad()
def extract(
    method: Method,
    images: Tensor,
    kind: str = "auto",
    batch_size: int = 1024,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
) -> Tensor:
    """uint8 or float images [N, C, H, W] -> representation [N, D] (float32, on CPU).

    precision: the network runs under this autocast (the training precision, e.g. bf16 where the hardware has
    it); the features are returned in float32, and every probe and metric runs in float32 on them.
    """
    method.eval()
    with autocast(torch.device(device), precision):
        out = [
            method.represent(to_float_images(images[i : i + batch_size].to(device)), kind).float().cpu()
            for i in range(0, len(images), batch_size)
        ]
    return torch.cat(out)


@torch.no_grad()
def extract_uncertainty(
    method: Method, images: Tensor, batch_size: int = 1024, device: str | torch.device = "cpu", kind: str | None = None
) -> Tensor:
    """Per-image posterior uncertainty score ``kind`` [N] (default: the method's; zeros for point-mass methods)."""
    method.eval()
    out = [
        method.uncertainty(to_float_images(images[i : i + batch_size].to(device)), kind).float().cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out)


@torch.no_grad()
def extract_embeddings(
    method: Method, images: Tensor, batch_size: int = 1024, device: str | torch.device = "cpu", precision: str = "fp32"
) -> Tensor:
    """Posterior mean direction on the sphere / latent mean, [N, d]."""
    return extract(method, images, "mean", batch_size, device, precision)
