"""Typed run configuration: dataclasses, YAML presets and ``key=value`` overrides.

A run is fully described by one :class:`Config`. Presets live in ``probssl/presets/*.yaml`` and
hold only the fields that differ from the defaults. Every key is checked: an unknown key or a
value of the wrong type raises :class:`ConfigError` naming the valid keys, so a typo never
silently trains the wrong model.

This module is the base layer of the package: it imports nothing else from probssl.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A preset, file or override that does not fit the config schema."""


@dataclass
class DataConfig:
    name: str = "digits"
    data_dir: str | None = None  # else $PROBSSL_DATA, else the user cache dir
    val_fraction: float = 0.1
    split_seed: int = 0
    train_subset: int | None = None  # cap on training images, for quick runs
    download: bool = True


@dataclass
class AugmentConfig:
    recipe: str = "simclr"  # simclr | simvae | none
    views: int = 2
    clean_first_view: bool = False  # view 0 is the un-augmented image (CR-VAE's x; t(x) are the others)
    # Overrides of the recipe's values; None keeps the recipe default.
    crop_scale: list[float] | None = None
    crop_ratio: list[float] | None = None
    hflip_p: float | None = None
    vflip_p: float | None = None
    jitter_p: float | None = None
    brightness: float | None = None
    contrast: float | None = None
    saturation: float | None = None
    hue: float | None = None
    grayscale_p: float | None = None
    blur_p: float | None = None
    solarize_p: float | None = None
    binarize: bool | None = None


@dataclass
class ModelConfig:
    backbone: str = "convnet"
    width: float | None = None  # convnet width multiplier (None: backbone default)
    feature_dim: int | None = None  # convnet feature size (None: backbone default)
    head_hidden_dim: int = 512
    head_layers: int = 2
    embed_dim: int = 128  # d: the sphere S^{d-1} or latent size
    decoder: str = "auto"  # generative methods: auto (mirror of the backbone) | mlp | conv | resnet
    channels_last: bool | None = None  # NHWC convs; None (auto): on for conv models on CPU and CUDA mixed precision


@dataclass
class MethodConfig:
    name: str = "simclr"
    temperature: float = 0.5
    # Probabilistic methods: weight of the KL term (SimVAE: of the prior and entropy terms), and how
    # the sphere KL is estimated.
    beta: float = 1.0
    kl_estimator: str = "scaled-bound"  # mc | gaussian-bound | scaled-bound
    kl_normalize: bool = True  # divide the KL by d (VCL's normalised KL)
    kl_samples: int = 16  # Monte-Carlo samples for kl_estimator=mc
    gather_distributed: bool = True  # under torchrun, every rank's samples act as negatives
    # SCL (stochastic contrastive learning): the latent-variable layer.
    latent: str = "gaussian"  # gaussian | bernoulli
    latent_dim: int = 128  # size of the stochastic layer (number of bits for bernoulli)
    relax_temperature: list[float] = field(default_factory=lambda: [1.0, 0.5])  # bernoulli: start, end (annealed)
    # SimVAE and the VAE baselines.
    prior_variance: float = 0.15  # SimVAE s^2 in p(z_j | y) = N(y, s^2 I)
    content_prior: str = "gaussian"  # SimVAE p(y): gaussian | uniform
    exact_marginal: bool = False  # SimVAE: exact marginal with the factor 1 / (1 + s^2 / J)
    likelihood: str = "bernoulli"  # bernoulli (BCE) | gaussian (fixed variance)
    log_var_x: float = -4.6  # log sigma_x^2 of the gaussian likelihood
    entropy: str = "correct"  # SimVAE posterior entropy: correct | official (the release code's variant)
    gamma: float = 1e-3  # CR-VAE consistency weight
    # VICReg (Bardes et al. 2022) coefficients.
    vicreg_sim: float = 25.0
    vicreg_std: float = 25.0
    vicreg_cov: float = 1.0


@dataclass
class TrainConfig:
    epochs: int = 50
    batch_size: int = 256
    optimizer: str = "adamw"  # adamw | adam | sgd | lars
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    adam_eps: float = 1e-8  # SimVAE's reference code uses 1e-4
    warmup_epochs: float = 2.0
    min_lr_ratio: float = 0.0  # cosine decays to lr * min_lr_ratio
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16 | fp16
    num_threads: int = 0  # torch threads on CPU; 0 keeps torch's default
    max_steps: int | None = None  # stop early after this many optimiser steps
    log_every: int = 10
    checkpoint_every: int = 1  # epochs
    checkpoint_every_steps: int = 0  # also checkpoint mid-epoch every this many steps (0: off)
    skip_nonfinite: int = 0  # skip up to this many steps whose loss is NaN/inf instead of stopping
    deterministic: bool = False  # torch.use_deterministic_algorithms (bit-exact resume, slower on GPU)
    sync_batchnorm: bool = False  # SyncBatchNorm under torchrun (GPU/NCCL only)
    tensorboard: bool = False  # also log to RUN/tensorboard (needs the tensorboard package)
    progress: bool = True


@dataclass
class EvalConfig:
    representation: str = "auto"  # auto | backbone | mean | direction | sample | bits
    batch_size: int = 1024
    knn_k: list[int] = field(default_factory=lambda: [1, 5, 10, 20, 50])
    linear_weight_decays: list[float] = field(default_factory=lambda: [0.0, 1e-5, 1e-4, 1e-3, 1e-2])


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------- building


def _did_you_mean(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1)
    return f" Did you mean '{close[0]}'?" if close else ""


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check ``value`` against a field annotation; ints are accepted for floats."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is list:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported field type {annotation!r}")


def _section_types(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _apply(obj: Any, updates: dict[str, Any], prefix: str = "") -> None:
    hints = _section_types(type(obj))
    valid = list(hints)
    for key, value in updates.items():
        where = f"{prefix}{key}"
        if key not in hints:
            raise ConfigError(
                f"Unknown config key '{where}'.{_did_you_mean(key, valid)} "
                f"Valid keys{' in ' + prefix.rstrip('.') if prefix else ''}: {', '.join(valid)}."
            )
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"'{where}' is a section; give it a mapping of keys, got {value!r}")
            _apply(current, value, prefix=f"{where}.")
        else:
            setattr(obj, key, _coerce(value, hints[key], where))


def from_dict(data: dict[str, Any] | None) -> Config:
    """Build a :class:`Config` from a nested mapping, checking every key and type."""
    config = Config()
    if data:
        if not isinstance(data, dict):
            raise ConfigError(f"A config must be a mapping of sections, got {type(data).__name__}")
        _apply(config, data)
    return config


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``section.key=value``; the value is read as YAML (``1e-3``, ``[0.2, 1.0]``, ``null``)."""
    if "=" not in text:
        raise ConfigError(f"Override '{text}' must look like section.key=value (e.g. train.epochs=5)")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else None
    # YAML reads "1e-3" as a string; accept the obvious float spelling.
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            value = raw
    return key.strip().split("."), value


def apply_overrides(config: Config, overrides: list[str]) -> Config:
    for text in overrides:
        path, value = parse_override(text)
        nested: Any = value
        for part in reversed(path):
            nested = {part: nested}
        _apply(config, nested)
    return config


# ----------------------------------------------------------------------------- presets


def _preset_dir():
    return resources.files("probssl") / "presets"


def list_presets() -> list[str]:
    return sorted(p.name[: -len(".yaml")] for p in _preset_dir().iterdir() if p.name.endswith(".yaml"))


def load_preset(name: str) -> Config:
    names = list_presets()
    if name not in names:
        raise ConfigError(f"Unknown preset '{name}'.{_did_you_mean(name, names)} Presets: {', '.join(names)}.")
    text = (_preset_dir() / f"{name}.yaml").read_text()
    return from_dict(yaml.safe_load(text))


def load_config(
    preset: str | None = None, file: str | Path | None = None, overrides: list[str] | None = None
) -> Config:
    """Preset, then a YAML file on top, then ``key=value`` overrides on top of both."""
    config = load_preset(preset) if preset else Config()
    if file is not None:
        data = yaml.safe_load(Path(file).read_text())
        if data:
            _apply(config, data)
    return apply_overrides(config, overrides or [])


def to_yaml(config: Config) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
