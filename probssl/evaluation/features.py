"""Frozen-feature extraction: batched, no augmentation, eval mode, no gradients."""

from __future__ import annotations

import torch
from torch import Tensor

from probssl.data import to_float_images
from probssl.distributions import Posterior
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


def representations_from(
    method: Method, images: Tensor, features: Tensor, posterior, kinds: tuple[str, ...] | list[str]
) -> dict[str, Tensor]:
    """{kind: [N, D] float32 on the CPU} of each representation kind of a batch of float ``images`` [N, C, H, W]
    whose backbone ``features`` [N, F] and ``posterior`` are already made (``Method.representation_from``); a
    method that overrides ``represent`` itself is asked through it."""
    if method.overrides("represent"):
        return {k: method.represent(images, k).float().cpu() for k in kinds}
    return {k: method.representation_from(features, posterior, k).float().cpu() for k in kinds}


def network_pass(method: Method, x: Tensor, needs_posterior: bool = True) -> tuple[Tensor, Posterior | None]:
    """A checked float batch ``x`` [N, C, H, W] -> (backbone features [N, F], its posterior or None without
    ``needs_posterior``), in one backbone pass (``Method.features_and_posterior``), under the caller's autocast."""
    if needs_posterior:
        return method.features_and_posterior(x)
    return method.forward_features(x), None


@torch.no_grad()
def extract_many(
    method: Method,
    images: Tensor,
    kinds: tuple[str, ...] | list[str],
    batch_size: int = 1024,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
) -> dict[str, Tensor]:
    """:func:`extract` of several representation kinds (e.g. the evaluated one and ``backbone``) from one network
    pass per batch: uint8 or float images [N, C, H, W] -> {kind: [N, D] float32 on the CPU}."""
    method.eval()
    kinds = list(dict.fromkeys(method.default_representation if k == "auto" else k for k in kinds))
    needs_posterior = any(k != "backbone" for k in kinds)
    asks_represent = method.overrides("represent")  # representations_from asks it per kind: no pass here
    out: dict[str, list[Tensor]] = {k: [] for k in kinds}
    with autocast(torch.device(device), precision):
        for i in range(0, len(images), batch_size):
            x = method.check_images(images[i : i + batch_size].to(device), "represent")
            features, q = (None, None) if asks_represent else network_pass(method, x, needs_posterior)
            for k, r in representations_from(method, x, features, q, kinds).items():
                out[k].append(r)
    return {k: torch.cat(v) for k, v in out.items()}


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
