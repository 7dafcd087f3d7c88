"""Typed run configuration: dataclasses, YAML presets and ``key=value`` overrides.

A run is fully described by one :class:`Config`. Presets live in ``probssl/presets/*.yaml`` and
hold only the fields that differ from the defaults. Every key is checked: an unknown key or a
value of the wrong type raises :class:`ConfigError` naming the valid keys, so a typo never
silently trains the wrong model.

This module is the base layer of the package: it imports nothing else from probssl.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A preset, file or override that does not fit the config schema."""


def did_you_mean(key: str, valid: list[str] | tuple[str, ...], cutoff: float = 0.6, n: int = 1) -> str:
    """' Did you mean 'x'?' (or 'x' or 'y' for ``n`` > 1) for the closest entries of ``valid``, or ''. The one
    spelling helper of probssl."""
    close = difflib.get_close_matches(str(key), list(valid), n=n, cutoff=cutoff)
    return " Did you mean " + " or ".join(f"'{c}'" for c in close) + "?" if close else ""


def spec(
    default: Any = None,
    *,
    choices: tuple | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
    operational: bool = False,
) -> Any:
    """A config field with its checks, applied whenever a value is set (preset, file, override).

    choices: the valid values; minimum / maximum: an inclusive range (``exclusive_minimum`` makes the
    minimum strict). operational: the field changes how a run is watched or where it runs, not what it
    computes (a run may be resumed with another value, and reports group runs across its values).
    """
    metadata = {
        "choices": choices,
        "minimum": minimum,
        "maximum": maximum,
        "exclusive_minimum": exclusive_minimum,
        "operational": operational,
    }
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


# ----------------------------------------------------------------------------- sections


@dataclass
class DataConfig:
    name: str = "digits"  # any registered dataset (probssl.data.list_datasets())
    data_dir: str | None = spec(None, operational=True)  # else $PROBSSL_DATA, else the user cache dir
    val_fraction: float = spec(0.1, minimum=0.0, maximum=1.0, exclusive_minimum=True)
    split_seed: int = spec(0, minimum=0)
    train_subset: int | None = spec(None, minimum=2)  # cap on training images, for quick runs
    download: bool = spec(True, operational=True)
    classes: list[int] | None = None  # train (and evaluate) on these class indices only; the rest is held out
    # Your own images (data.name: folder): a common size for images of different sizes (None: all must match),
    # how to get there, and the background that transparent pixels are composited on (0 black .. 255 white).
    image_size: int | None = spec(None, minimum=1)
    resize: str = spec("short-side-crop", choices=("short-side-crop", "stretch", "pad"))
    alpha_background: int = spec(0, minimum=0, maximum=255)
    max_image_pixels: int = spec(50_000_000, minimum=1)  # larger images are refused before decoding (bombs)
    # unlabelled-folder / manifest without a test split of their own: the share of images held out as test
    # (a fixed seed: the test images never depend on split_seed).
    test_fraction: float = spec(0.1, minimum=0.0, maximum=1.0, exclusive_minimum=True)
    # File datasets larger than memory: auto streams them when their decoded pixels would take > 50% of the
    # available memory; DataLoader workers decode the coming batches (None: min(2, CPU cores); 0: in the trainer).
    in_memory: bool | str = spec("auto", choices=(True, False, "auto"), operational=True)
    loader_workers: int | None = spec(None, minimum=0, operational=True)
    attribute: str | None = None  # celeba: null = SimVAE's hair-colour task, else one binary attribute (Smiling)
    fold: int | None = spec(None, minimum=0, maximum=9)  # stl10: null = all 5,000 train images, else that fold's 1,000

    def check(self) -> list[str]:
        problems = [] if self.val_fraction < 1 else [f"data.val_fraction must be < 1, got {self.val_fraction}"]
        if self.test_fraction >= 1:
            problems.append(f"data.test_fraction must be < 1, got {self.test_fraction}")
        if self.classes is not None and (len(self.classes) < 2 or len(set(self.classes)) != len(self.classes)):
            problems.append(f"data.classes must list at least two distinct class indices, got {self.classes}")
        return problems


@dataclass
class AugmentConfig:
    recipe: str = spec("simclr", choices=("simclr", "simvae", "none"))
    views: int = spec(2, minimum=2, maximum=16)
    clean_first_view: bool = False  # view 0 is the un-augmented image (CR-VAE's x; t(x) are the others)
    # Overrides of the recipe's values (probssl.augment.AugmentParams); None keeps the recipe default.
    crop_scale: list[float] | None = None
    crop_ratio: list[float] | None = None
    hflip_p: float | None = spec(None, minimum=0.0, maximum=1.0)
    vflip_p: float | None = spec(None, minimum=0.0, maximum=1.0)
    jitter_p: float | None = spec(None, minimum=0.0, maximum=1.0)
    brightness: float | None = spec(None, minimum=0.0)
    contrast: float | None = spec(None, minimum=0.0)
    saturation: float | None = spec(None, minimum=0.0)
    hue: float | None = spec(None, minimum=0.0, maximum=0.5)
    grayscale_p: float | None = spec(None, minimum=0.0, maximum=1.0)
    blur_p: float | None = spec(None, minimum=0.0, maximum=1.0)
    blur_sigma: list[float] | None = None
    solarize_p: float | None = spec(None, minimum=0.0, maximum=1.0)
    solarize_threshold: float | None = spec(None, minimum=0.0, maximum=1.0)
    binarize: bool | None = None

    def check(self) -> list[str]:
        problems = []
        for key in ("crop_scale", "crop_ratio", "blur_sigma"):
            value = getattr(self, key)
            if value is not None and (len(value) != 2 or not 0 < value[0] <= value[1]):
                problems.append(f"augment.{key} must be two numbers 0 < low <= high, got {value}")
        if self.crop_scale is not None and len(self.crop_scale) == 2 and self.crop_scale[1] > 1:
            problems.append(f"augment.crop_scale must lie in (0, 1], got {self.crop_scale}")
        return problems


@dataclass
class ModelConfig:
    # A registered backbone (probssl.models.list_backbones()) or a factory given as package.module:callable.
    backbone: str = "convnet"
    backbone_args: dict[str, Any] = spec({})  # every keyword passed through to the backbone factory
    width: float | None = spec(None, minimum=0.0, exclusive_minimum=True)  # convnet width multiplier
    feature_dim: int | None = spec(None, minimum=1)  # convnet feature size (None: backbone default)
    head_hidden_dim: int = spec(512, minimum=1)
    head_layers: int = spec(2, minimum=1)
    embed_dim: int = spec(128, minimum=2)  # d: the sphere S^{d-1} (needs d >= 2) or latent size
    decoder: str = spec("auto", choices=("auto", "mlp", "conv", "resnet", "simvae-resnet18"))  # generative methods
    channels_last: bool | None = None  # NHWC convs; None (auto): on for conv models on CPU and CUDA mixed precision


@dataclass
class MethodConfig:
    """Base of every method's hyper-parameters: ``name`` picks the method, whose own subclass (registered
    with :func:`register_method_config` by the method's module) holds the rest."""

    name: str = "simclr"
    # Every method: the score method.uncertainty() reports (None: the method's evidence-chosen default, see
    # docs/uncertainty.md), and an epistemic feature density fitted when training ends (probssl.methods.epistemic).
    uncertainty_score: str | None = None
    epistemic: bool = False

    def check(self) -> list[str]:
        """Problems with values that type-check but cannot work (one message each, naming the key)."""
        return []


@dataclass
class TrainConfig:
    epochs: int = spec(50, minimum=1)
    batch_size: int = spec(256, minimum=2)  # contrastive losses need negatives
    optimizer: str = spec("adamw", choices=("adamw", "adam", "sgd", "lars"))
    lr: float = spec(1e-3, minimum=0.0, exclusive_minimum=True)
    weight_decay: float = spec(1e-4, minimum=0.0)
    momentum: float = spec(0.9, minimum=0.0, maximum=1.0)
    adam_eps: float = spec(1e-8, minimum=0.0, exclusive_minimum=True)  # SimVAE's reference code uses 1e-4
    warmup_epochs: float = spec(2.0, minimum=0.0)
    min_lr_ratio: float = spec(0.0, minimum=0.0, maximum=1.0)  # cosine decays to lr * min_lr_ratio
    seed: int = spec(0, minimum=0)
    device: str = spec("auto", operational=True)  # auto | cpu | cuda | cuda:N
    precision: str = spec("auto", choices=("auto", "fp32", "bf16", "fp16"))  # auto: by the hardware (and a probe)
    compile: bool | str = spec("auto", choices=(True, False, "auto"))  # torch.compile; auto: where it repays
    # torch.compile backend: inductor (generated kernels); aot_eager / eager: graph capture only, for debugging and tests
    compile_backend: str = spec("inductor", choices=("inductor", "aot_eager", "eager"), operational=True)
    num_threads: int = spec(0, minimum=0, operational=True)  # torch threads on CPU; 0 keeps torch's default
    max_steps: int | None = spec(None, minimum=1)  # stop early after this many optimiser steps
    log_every: int = spec(10, minimum=1, operational=True)
    checkpoint_every: int = spec(1, minimum=0, operational=True)  # epochs
    checkpoint_every_steps: int = spec(0, minimum=0, operational=True)  # also mid-epoch every N steps (0: off)
    keep_checkpoints: int = spec(2, minimum=1, operational=True)  # the N newest checkpoints are kept, older deleted
    skip_nonfinite: int = spec(0, minimum=0)  # skip up to this many steps whose loss is NaN/inf
    deterministic: bool = False  # torch.use_deterministic_algorithms (bit-exact resume, slower on GPU)
    sync_batchnorm: bool = False  # SyncBatchNorm under torchrun (GPU/NCCL only)
    tensorboard: bool = spec(False, operational=True)  # also log to RUN/tensorboard (needs tensorboard)
    progress: bool = spec(True, operational=True)
    # Online monitors (kNN, ridge probe, RankMe, alignment/uniformity, uncertainty canary) every N epochs; 0: off.
    # They change no training result (tested), hence operational. monitor_samples: reference images at most (the
    # budget may shrink them), half as many queries; monitor_budget: their share of the training time; null: none.
    monitor_every: int = spec(1, minimum=0, operational=True)
    monitor_every_steps: int = spec(0, minimum=0, operational=True)  # also every N steps (0: only by epoch)
    monitor_samples: int = spec(512, minimum=10, operational=True)
    monitor_budget: float | None = spec(0.05, minimum=0.0, operational=True)

    def check(self) -> list[str]:
        device = self.device
        if device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit()):
            return []
        return [f"train.device must be auto, cpu, cuda or cuda:N, got {device!r}"]


@dataclass
class EvalConfig:
    representation: str = spec("auto", choices=("auto", "backbone", "mean", "direction", "sample", "bits"))
    batch_size: int = spec(1024, minimum=1)
    knn_k: list[int] = spec([1, 5, 10, 20, 50])
    linear_weight_decays: list[float] = spec([0.0, 1e-5, 1e-4, 1e-3, 1e-2])
    # Fine-tuning (probssl.evaluation.finetune: a copy of the backbone + a linear head, AdamW, cosine lr, the run's
    # augmentation, the epoch chosen on validation). fine_tune: true makes `probssl eval` run it (as --fine-tune).
    fine_tune: bool = False
    fine_tune_epochs: int = spec(10, minimum=1)
    fine_tune_lr: float = spec(1e-3, minimum=0.0, exclusive_minimum=True)
    fine_tune_weight_decay: float = spec(1e-4, minimum=0.0)
    fine_tune_batch_size: int = spec(256, minimum=1)


# ----------------------------------------------------------------------------- method schemas

_METHOD_CONFIGS: dict[str, type[MethodConfig]] = {}

# The flat method section of probssl <= 0.1 (one schema shared by every method). Run directories written
# then hold all of these keys; from_dict(..., migrate=True) drops the ones the run's method does not have.
LEGACY_METHOD_KEYS = frozenset(
    {
        "temperature",
        "beta",
        "kl_estimator",
        "kl_normalize",
        "kl_samples",
        "gather_distributed",
        "latent",
        "latent_dim",
        "relax_temperature",
        "prior_variance",
        "content_prior",
        "exact_marginal",
        "likelihood",
        "log_var_x",
        "entropy",
        "gamma",
        "vicreg_sim",
        "vicreg_std",
        "vicreg_cov",
    }
)


def register_method_config(name: str, cls: type[MethodConfig]) -> None:
    """Make ``method.name: NAME`` build a ``cls`` (a MethodConfig subclass)."""
    if not (isinstance(cls, type) and issubclass(cls, MethodConfig)):
        raise TypeError(f"the config of method {name!r} must subclass probssl.config.MethodConfig, got {cls!r}")
    _METHOD_CONFIGS[name] = cls


def method_config_class(name: str) -> type[MethodConfig]:
    if name not in _METHOD_CONFIGS:
        names = sorted(_METHOD_CONFIGS)
        raise ConfigError(f"Unknown method.name {name!r}.{did_you_mean(name, names)} Methods: {', '.join(names)}.")
    return _METHOD_CONFIGS[name]


def _default_method() -> MethodConfig:
    cls = _METHOD_CONFIGS.get("simclr", MethodConfig)
    return cls(name="simclr")


def _switch_method(current: MethodConfig, name: str) -> MethodConfig:
    """A config of method ``name`` that keeps the values ``current`` set away from its own defaults
    (so ``--set method.name=vsupcon`` on a VSimCLR preset keeps its temperature), where they apply."""
    new = method_config_class(name)(name=name)
    defaults = type(current)()
    shared = {f.name for f in dataclasses.fields(new)} - {"name"}
    for f in dataclasses.fields(current):
        if f.name in shared and getattr(current, f.name) != getattr(defaults, f.name):
            setattr(new, f.name, copy.deepcopy(getattr(current, f.name)))
    return new


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=_default_method)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> Config:
        """Cross-field checks of every section and of the registered validators; raises one ConfigError
        listing every problem. Returns the config."""
        problems = []
        for f in dataclasses.fields(self):
            section = getattr(self, f.name)
            for sub in dataclasses.fields(section):  # a value set in Python bypasses _apply's checks
                try:
                    _check_spec(getattr(section, sub.name), sub.metadata, f"{f.name}.{sub.name}")
                except ConfigError as err:
                    problems.append(str(err).rstrip("."))
            problems += section.check() if hasattr(section, "check") else []
        for validator in _VALIDATORS:
            problems += validator(self)
        if problems:
            raise ConfigError("Invalid config: " + "; ".join(problems) + ".")
        return self


# Checks that need a later layer (the dataset and backbone registries) register here, so config stays
# the base layer and still every name is checked when a config is built.
_VALIDATORS: list[Callable[[Config], list[str]]] = []


def register_validator(fn: Callable[[Config], list[str]]) -> Callable[[Config], list[str]]:
    _VALIDATORS.append(fn)
    return fn


def operational_keys() -> tuple[str, ...]:
    """``section.key`` of every field marked operational (see :func:`spec`)."""
    keys = []
    for section in dataclasses.fields(Config):
        for f in dataclasses.fields(section.default_factory()):
            if f.metadata.get("operational"):
                keys.append(f"{section.name}.{f.name}")
    return tuple(keys)


# ----------------------------------------------------------------------------- building


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
    if origin is dict or annotation is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ConfigError(f"{where}: expected a mapping of names to values, got {value!r}")
        return copy.deepcopy(value)
    return _coerce_scalar(value, annotation, where)


def _coerce_scalar(value: Any, annotation: Any, where: str) -> Any:
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
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
    if annotation is Any:
        return value
    raise ConfigError(f"{where}: unsupported field type {annotation!r}")


def _check_spec(value: Any, metadata: Any, where: str) -> None:
    """The choices and range of a :func:`spec` field (None always passes: it means 'not set')."""
    if value is None or not metadata:
        return
    choices = metadata.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(
            f"{where} must be one of {', '.join(map(str, choices))}, got {value!r}."
            f"{did_you_mean(str(value), [str(c) for c in choices])}"
        )
    low, high = metadata.get("minimum"), metadata.get("maximum")
    strict = metadata.get("exclusive_minimum")
    if low is not None and (value < low or (strict and value == low)):
        raise ConfigError(f"{where} must be {'>' if strict else '>='} {low}, got {value!r}")
    if high is not None and value > high:
        raise ConfigError(f"{where} must be <= {high}, got {value!r}")


def _apply(obj: Any, updates: dict[str, Any], prefix: str = "", migrate: bool = False) -> None:
    hints = typing.get_type_hints(type(obj))
    fields = {f.name: f for f in dataclasses.fields(obj)}
    if isinstance(obj, MethodConfig) and migrate:
        updates = {k: v for k, v in updates.items() if k in fields or k not in LEGACY_METHOD_KEYS}
    for key, value in updates.items():
        where = f"{prefix}{key}"
        if key not in fields:
            section = prefix.rstrip(".")
            owner = f" of method {obj.name!r}" if isinstance(obj, MethodConfig) else ""
            raise ConfigError(
                f"Unknown config key '{where}'{owner}.{did_you_mean(key, list(fields))} "
                f"Valid keys{' in ' + section if section else ''}: {', '.join(fields)}."
            )
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"'{where}' is a section; give it a mapping of keys, got {value!r}")
            if isinstance(current, MethodConfig):
                current = _method_section(obj, key, current, value, where)
                value = {k: v for k, v in value.items() if k != "name"}
            _apply(current, value, prefix=f"{where}.", migrate=migrate)
        elif isinstance(current, dict) and isinstance(value, dict):
            setattr(obj, key, {**current, **_coerce(value, hints[key], where)})  # overrides merge into a mapping
        else:
            coerced = _coerce(value, hints[key], where)
            _check_spec(coerced, fields[key].metadata, where)
            setattr(obj, key, coerced)


def _method_section(parent: Any, key: str, current: MethodConfig, value: dict, where: str) -> MethodConfig:
    """The method section switches schema when its name changes (name is applied before the other keys)."""
    if "name" not in value:
        return current
    name = _coerce(value["name"], str, f"{where}.name")
    if name != current.name or type(current) is not method_config_class(name):
        current = _switch_method(current, name)
        setattr(parent, key, current)
    return current


def from_dict(data: dict[str, Any] | None, migrate: bool = False) -> Config:
    """Build a :class:`Config` from a nested mapping, checking every key and type.

    migrate: the mapping was stored by an earlier probssl (a run's config.yaml or checkpoint), whose flat
    method section held every method's keys: keys of that schema that the run's method does not have are
    dropped instead of being errors.
    """
    config = Config()
    if data:
        if not isinstance(data, dict):
            raise ConfigError(f"A config must be a mapping of sections, got {type(data).__name__}")
        _apply(config, data, migrate=migrate)
    return config.validate()


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
    return config.validate()


# ----------------------------------------------------------------------------- presets


def _preset_dir():
    return resources.files("probssl") / "presets"


def list_presets() -> list[str]:
    return sorted(p.name[: -len(".yaml")] for p in _preset_dir().iterdir() if p.name.endswith(".yaml"))


def load_preset(name: str) -> Config:
    names = list_presets()
    if name not in names:
        raise ConfigError(f"Unknown preset '{name}'.{did_you_mean(name, names)} Presets: {', '.join(names)}.")
    text = (_preset_dir() / f"{name}.yaml").read_text()
    return from_dict(yaml.safe_load(text))


def load_config(
    preset: str | None = None, file: str | Path | None = None, overrides: list[str] | None = None
) -> Config:
    """Preset, then a YAML file on top, then ``key=value`` overrides on top of both."""
    config = load_preset(preset) if preset else Config()
    if file is not None:
        data = read_config_file(file)
        if data:
            _apply(config, data)
    return apply_overrides(config, overrides or [])


def read_config_file(file: str | Path) -> dict[str, Any] | None:
    """A YAML config file as a mapping of sections; any other content is one ConfigError naming the file."""
    path = Path(file)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise ConfigError(f"config file {path} {what}; give a YAML file of sections (data:, model:, method:, ...)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not text (binary?); give a YAML file") from None
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        raise ConfigError(f"config file {path} is not valid YAML{at}: {getattr(err, 'problem', err)}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of sections (data:, model:, ...), got a {type(data).__name__}"
        )
    return data


def to_yaml(config: Config) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
