"""A guard against a CPU bfloat16 convolution bug: strided convolutions over a 1-pixel-wide input get a corrupt
weight gradient under bf16 autocast, so probssl runs those layers in float32.

Found in issue #11 (2026-12-02): an ImageNet ResNet-18 (timm or torchvision) trained on 8x8 digits in bf16
diverged by step 2 in 3 of 16 runs (torch 2.14.1), with NaN in exactly one gradient, ``layer3.0.conv1.weight``: a
3x3, stride-2, padding-1 convolution whose input is 1x1. It was first seen on an Intel Xeon with AMX; a bare
``Conv2d`` reproduces it with torch 2.13.0 and 2.14.1 on an AMD EPYC with AVX512-BF16 (no AMX):
``benchmarks/bf16_conv_bug.py`` (results: ``benchmarks/results/bf16-conv-bug-avx512-epyc.jsonl``) found the weight
gradient non-finite in 6-28 % of trials for 1x1 inputs with 3x3/s2, 3x3/s3 and 5x5/s2, and in 8-62 % after the freed
memory was filled with NaN, so the kernel reads uninitialised memory at the taps that only see padding (finite
garbage is as possible as NaN). The input gradient and float32 are correct; stride 1 and inputs of 2x2 or more
never failed. Such layers appear when a network built for large images (an ImageNet stem) meets small ones. With
the guard, 0 of 20 standalone runs and 0 of 16 pytest runs of that integration test diverged.

The guard runs one forward pass on zeros of the training image shape, finds every ``nn.Conv2d`` with that
geometry and makes it compute in float32 (autocast off inside it; its output is float32, which the next op
accepts under autocast). The Trainer applies it on CPU under bf16 and records the layers in ``status.json``
(``fp32_convs``). Tested: ``tests/train/test_conv_guard.py``.
"""

from __future__ import annotations

import types

import torch
from torch import nn

__all__ = ["guard_cpu_bf16_convs", "keep_fp32", "risky_convs"]


def _risky(conv: nn.Conv2d, spatial: tuple[int, ...]) -> bool:
    return any(size == 1 and k > 1 and s > 1 for size, k, s in zip(spatial, conv.kernel_size, conv.stride))


@torch.no_grad()
def risky_convs(model: nn.Module, run, image_shape: tuple[int, int, int]) -> list[str]:
    """Names of the ``nn.Conv2d`` modules of ``model`` that ``run(images)`` (images zeros ``[2, *image_shape]``)
    feeds an input of size 1 in a spatial dimension where the kernel and the stride are larger than 1."""
    found: dict[str, None] = {}
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):

            def hook(mod, args, name=name):
                if _risky(mod, tuple(args[0].shape[-2:])):
                    found[name] = None

            handles.append(module.register_forward_pre_hook(hook))
    was_training = model.training
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    try:
        model.eval()
        run(torch.zeros(2, *image_shape, device=device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return list(found)


def _fp32_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.autocast(x.device.type, enabled=False):
        return type(self).forward(self, x.float())


def keep_fp32(module: nn.Module) -> None:
    """Make ``module`` compute in float32 under autocast (bound to the instance: a deepcopy keeps it)."""
    module.forward = types.MethodType(_fp32_forward, module)


def guard_cpu_bf16_convs(method: nn.Module, image_shape: tuple[int, int, int], device: torch.device, precision: str):
    """On CPU under bf16, the risky convolutions of ``method`` (through ``method.forward_features``) are kept in
    float32; returns their names ([] elsewhere)."""
    if device.type != "cpu" or precision != "bf16":
        return []
    names = risky_convs(method, method.forward_features, image_shape)
    modules = dict(method.named_modules())
    for name in names:
        keep_fp32(modules[name])
    return names
