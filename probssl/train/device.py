"""Device and precision selection: CUDA with mixed precision when present, float32 on CPU."""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def select_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device={name} but CUDA is not available on this machine; use auto or cpu")
    return device


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision '{precision}'; choose from {', '.join(PRECISIONS)}")
    if precision == "auto":
        # CPUs without AMX emulate bf16 (~100x slower than fp32 here), so mixed precision is GPU-only.
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def use_channels_last(setting: bool | None, model: torch.nn.Module, device: torch.device, precision: str) -> bool:
    """``model.channels_last``: an explicit true/false wins; ``None`` (auto) picks NHWC for models with 2-D
    convolutions on CPU, where the convnet's training step measured 25-67 % faster (docs/benchmarks.md,
    "Channels-last"), and on CUDA under mixed precision, where tensor-core convolutions
    want NHWC. CUDA fp32 stays NCHW (no measurement here)."""
    if setting is not None:
        return setting
    has_conv = any(isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) for m in model.modules())
    return has_conv and (device.type == "cpu" or precision != "fp32")
