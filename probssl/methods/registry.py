"""Method registry: ``create_method(config, image_shape)`` builds any registered method."""

from __future__ import annotations

import difflib
import inspect

from probssl.config import Config
from probssl.methods.base import Method
from probssl.models import BACKBONES, create_backbone

_METHODS: dict[str, type[Method]] = {}


def register_method(cls: type[Method]) -> type[Method]:
    if not cls.name or cls.name in _METHODS:
        raise ValueError(f"method name '{cls.name}' is empty or already registered")
    _METHODS[cls.name] = cls
    return cls


def list_methods() -> list[str]:
    return sorted(_METHODS)


def method_class(name: str) -> type[Method]:
    if name not in _METHODS:
        close = difflib.get_close_matches(name, list(_METHODS), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ValueError(f"Unknown method '{name}'.{hint} Methods: {', '.join(list_methods())}.")
    return _METHODS[name]


def create_method(config: Config, image_shape: tuple[int, int, int]) -> Method:
    """Build the backbone named in ``config.model`` and wrap it in ``config.method``'s method."""
    cls = method_class(config.method.name)
    channels, height, _ = image_shape
    kwargs = {}
    if config.model.width is not None:
        kwargs["width"] = config.model.width
    if config.model.feature_dim is not None:
        kwargs["feature_dim"] = config.model.feature_dim
    accepted = inspect.signature(BACKBONES[config.model.backbone]).parameters
    for key in kwargs:
        if key not in accepted:
            raise ValueError(
                f"model.{key} does not apply to backbone {config.model.backbone!r} "
                f"(set model.{key}=null, or pick a backbone that has it, e.g. convnet)"
            )
    backbone = create_backbone(config.model.backbone, in_channels=channels, image_size=height, **kwargs)
    return cls.from_config(backbone, config, image_shape)
