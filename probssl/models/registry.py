"""A small timm-like registry of model factories.

A :class:`Registry` maps names to factories (classes or functions).  Backbone factories have
the signature ``factory(in_channels: int, image_size: int, **kwargs) -> nn.Module`` and return a
module with an integer ``feature_dim`` attribute; decoder factories (see
:mod:`probssl.models.decoders`) have ``factory(latent_dim, out_shape, **kwargs)``.

Unknown names raise :class:`ValueError` listing every registered name plus a
"did you mean" suggestion (``probssl.config.did_you_mean``).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from probssl.config import Config, ConfigError, did_you_mean, register_validator

__all__ = [
    "Registry",
    "BACKBONES",
    "register_backbone",
    "create_backbone",
    "list_backbones",
    "prepare_backbone",
    "resolve_backbone_factory",
]

F = TypeVar("F", bound=Callable[..., Any])


class Registry(Mapping[str, Callable[..., Any]]):
    """Read-only mapping ``name -> factory`` with a decorator for registration.

    >>> REG = Registry("widget")
    >>> @REG.register("foo")
    ... def make_foo(): ...
    >>> sorted(REG)
    ['foo']
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._factories: dict[str, Callable[..., Any]] = {}

    # -- Mapping interface -------------------------------------------------------------------
    def __getitem__(self, name: str) -> Callable[..., Any]:
        try:
            return self._factories[name]
        except KeyError:
            raise ValueError(self.unknown_message(name)) from None

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._factories))

    def __len__(self) -> int:
        return len(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def get(self, name: str, default: Any = None) -> Any:
        return self._factories.get(name, default)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"

    # -- registration / lookup ---------------------------------------------------------------
    def names(self) -> list[str]:
        """Sorted list of registered names."""
        return sorted(self._factories)

    def register(self, name: str, factory: Callable[..., Any] | None = None, *, overwrite: bool = False):
        """Register ``factory`` under ``name``.

        Usable as a decorator (``@reg.register("name")``) or directly
        (``reg.register("name", factory)``).  Re-registering an existing name raises
        :class:`ValueError` unless ``overwrite=True``.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")

        def decorator(fn: F) -> F:
            if not callable(fn):
                raise TypeError(f"{self.kind} factory for {name!r} must be callable, got {fn!r}")
            if name in self._factories and not overwrite:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._factories[name] = fn
            return fn

        if factory is not None:
            return decorator(factory)
        return decorator

    def unregister(self, name: str) -> None:
        """Remove ``name`` (mainly for tests registering temporary entries)."""
        if name not in self._factories:
            raise ValueError(self.unknown_message(name))
        del self._factories[name]

    def unknown_message(self, name: object) -> str:
        names = self.names()
        msg = f"Unknown {self.kind} {name!r}.{did_you_mean(str(name), names, cutoff=0.5, n=3)}"
        msg += " Available: " + (", ".join(names) if names else "(none)") + "."
        return msg

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self[name](*args, **kwargs)


BACKBONES = Registry("backbone")


def register_backbone(name: str, *, overwrite: bool = False) -> Callable[[F], F]:
    """Decorator registering a backbone factory ``f(in_channels, image_size, **kwargs)``."""
    return BACKBONES.register(name, overwrite=overwrite)


def list_backbones() -> list[str]:
    """Sorted names of all registered backbones."""
    return BACKBONES.names()


def _check_image_size(image_size: Any) -> None:
    sizes = image_size if isinstance(image_size, (tuple, list)) else (image_size,)
    if len(sizes) not in (1, 2) or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes):
        raise ValueError(f"image_size must be a positive int or an (H, W) pair, got {image_size!r}")


def is_entry_point(name: str) -> bool:
    """``package.module:callable`` (Python entry-point syntax) rather than a registered name."""
    return ":" in name


def _import_entry_point(name: str) -> Callable[..., Any]:
    module_name, _, attr = name.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"model.backbone={name!r}: an entry point must look like package.module:callable")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(
            f"model.backbone={name!r}: cannot import module {module_name!r} ({err}). Install the package that "
            "provides it, or put its folder on PYTHONPATH."
        ) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"model.backbone={name!r}: module {module_name!r} has no attribute {attr!r}.")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"model.backbone={name!r}: {attr!r} is not callable.")
    return obj


EXTERNAL_PREFIXES = ("timm/", "torchvision/")


def is_external(name: str) -> bool:
    """``timm/NAME`` or ``torchvision/NAME``: a model of an installed package (probssl never imports it otherwise)."""
    return name.startswith(EXTERNAL_PREFIXES)


def _timm_factory(model: str) -> Callable[..., nn.Module]:
    def build(in_channels: int, image_size, pretrained_file: str | None = None, **kwargs) -> nn.Module:
        kwargs.setdefault("in_chans", in_channels)  # timm adapts the stem to grey images
        try:  # only when the user names a timm model: probssl does not depend on timm (tests/test_architecture.py)
            timm = importlib.import_module("timm")
        except ImportError:
            raise ConfigError(f"model.backbone=timm/{model} needs timm: pip install 'probssl[timm]'") from None
        net = timm.create_model(model, pretrained=False, num_classes=0, **kwargs)  # num_classes=0: features
        return _load_weights(net, pretrained_file, f"timm/{model}")

    return build


def _torchvision_factory(model: str) -> Callable[..., nn.Module]:
    def build(in_channels: int, image_size, pretrained_file: str | None = None, **kwargs) -> nn.Module:
        try:  # only when the user names a torchvision model (see above)
            torchvision = importlib.import_module("torchvision")
        except ImportError:
            raise ConfigError(
                f"model.backbone=torchvision/{model} needs torchvision: pip install torchvision"
            ) from None
        net = torchvision.models.get_model(model, weights=None, **kwargs)
        for attr in ("fc", "classifier", "head", "heads"):  # the classification layer becomes the identity
            if hasattr(net, attr):
                setattr(net, attr, nn.Identity())
                break
        net = _load_weights(net, pretrained_file, f"torchvision/{model}")
        # torchvision's models take RGB: grey images are repeated over three channels in front of them
        return net if in_channels == 3 else nn.Sequential(_RepeatChannels(3 // in_channels), net)

    return build


class _RepeatChannels(nn.Module):
    def __init__(self, times: int):
        super().__init__()
        self.times = times

    def forward(self, x):
        return x.repeat(1, self.times, 1, 1)


def _load_weights(net: nn.Module, path: str | None, name: str) -> nn.Module:
    """Pretrained weights only from a local file (safetensors, or a torch state dict loaded with weights_only)."""
    if path is None:
        return net
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"model.backbone_args.pretrained_file={path}: no such file (weights for {name})")
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(file))
    else:
        state = torch.load(file, map_location="cpu", weights_only=True)  # weights_only: never runs code
    missing, unexpected = net.load_state_dict(state, strict=False)
    unexpected = [k for k in unexpected if not k.startswith(("fc.", "classifier.", "head."))]
    if missing or unexpected:
        raise ConfigError(f"{file} does not fit {name}: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return net


def resolve_backbone_factory(name: str) -> Callable[..., Any]:
    """The factory of a registered backbone name, ``package.module:callable``, ``timm/NAME`` or
    ``torchvision/NAME`` (the last two build the package's model without its classifier; weights only from a
    local ``backbone_args.pretrained_file``, never downloaded)."""
    if name.startswith("timm/"):
        return _timm_factory(name[len("timm/") :])
    if name.startswith("torchvision/"):
        return _torchvision_factory(name[len("torchvision/") :])
    return _import_entry_point(name) if is_entry_point(name) else BACKBONES[name]


@register_validator
def _check_backbone_name(config: Config) -> list[str]:
    name = config.model.backbone
    if is_entry_point(name) or is_external(name) or name in BACKBONES:
        return []
    names = BACKBONES.names()
    return [
        f"unknown model.backbone {name!r}.{did_you_mean(name, names)} Registered: {', '.join(names)}; "
        "or give a factory as package.module:callable"
    ]


def prepare_backbone(model: nn.Module, in_channels: int, image_size: int | tuple[int, int]) -> nn.Module:
    """Check a backbone instance and give it an int ``feature_dim`` (from the attribute, or found by one dry
    forward of two images of the given shape in eval mode, restoring the mode). Its output must be [N, F]."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"a backbone must be an nn.Module, got {type(model).__name__}")
    if isinstance(getattr(model, "feature_dim", None), int):
        return model
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, in_channels, h, w, device=device))
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"backbone {type(model).__name__} maps [2, {in_channels}, {h}, {w}] images to {shape}; probssl needs "
            "features [N, F] (end the backbone with pooling and a flatten, or return the pooled features)"
        )
    model.feature_dim = int(out.shape[1])
    return model


def _call_factory(factory: Callable[..., Any], in_channels: int, image_size, kwargs: dict) -> Any:
    """Registered factories take (in_channels, image_size, **kwargs); an entry point gets those two only
    when its signature names them (a plain ``MyNet(**backbone_args)`` works too)."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # builtins without a signature: pass the keywords only
        return factory(**kwargs)
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    extra = {}
    if "in_channels" in params:
        extra["in_channels"] = in_channels
    if "image_size" in params:
        extra["image_size"] = image_size
    if takes_all:
        extra = {"in_channels": in_channels, "image_size": image_size, **extra}
    return factory(**{**extra, **kwargs})


def create_backbone(name: str, in_channels: int, image_size: int | tuple[int, int], **kwargs: Any) -> nn.Module:
    """Build the backbone registered as ``name`` (or the ``package.module:callable`` factory ``name``).

    Args:
        name: a name from :func:`list_backbones` (e.g. ``"convnet"``, ``"resnet18-cifar"``), or an entry
            point ``package.module:callable`` (imported; a missing module is a ConfigError naming it).
        in_channels: image channels (1 for grey, 3 for colour).
        image_size: side of the (square) input images, or an ``(H, W)`` pair.
        **kwargs: forwarded to the factory (e.g. ``feature_dim``, ``width``, ``stem``).

    Returns:
        an ``nn.Module`` mapping ``[N, in_channels, H, W]`` floats to ``[N, feature_dim]``,
        with an integer ``feature_dim`` attribute.

    Raises:
        ValueError: unknown name (the message lists the available names) or bad sizes.
    """
    factory = resolve_backbone_factory(name)  # ValueError with suggestions if unknown
    if not isinstance(in_channels, int) or isinstance(in_channels, bool) or in_channels <= 0:
        raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
    _check_image_size(image_size)
    if is_entry_point(name) or is_external(name):
        model = _call_factory(factory, in_channels, image_size, kwargs)
        if not isinstance(model, nn.Module):
            raise TypeError(f"backbone factory {name!r} must return an nn.Module, got {type(model).__name__}")
        return prepare_backbone(model, in_channels, image_size)
    model = factory(in_channels, image_size, **kwargs)
    fd = getattr(model, "feature_dim", None)
    if not isinstance(model, nn.Module) or not isinstance(fd, int):
        raise TypeError(f"backbone factory {name!r} must return an nn.Module with an int feature_dim")
    return model
