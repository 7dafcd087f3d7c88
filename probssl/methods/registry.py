"""Method registry: ``create_method(config, image_shape)`` builds any registered method.

``@register_method`` registers a :class:`~probssl.methods.Method` subclass under its ``name`` together
with its ``config_class`` (the schema of ``config.method`` for that name), so a new method is one module.
"""

from __future__ import annotations

import inspect

from torch import nn

from probssl.config import Config, ConfigError, did_you_mean, register_method_config
from probssl.methods.base import Method
from probssl.models import create_backbone, prepare_backbone, resolve_backbone_factory

_METHODS: dict[str, type[Method]] = {}


def register_method(cls: type[Method]) -> type[Method]:
    if not cls.name or cls.name in _METHODS:
        raise ValueError(f"method name '{cls.name}' is empty or already registered")
    _METHODS[cls.name] = cls
    register_method_config(cls.name, cls.config_class)
    return cls


def list_methods() -> list[str]:
    return sorted(_METHODS)


def method_class(name: str) -> type[Method]:
    if name not in _METHODS:
        raise ValueError(
            f"Unknown method '{name}'.{did_you_mean(name, list(_METHODS))} Methods: {', '.join(list_methods())}."
        )
    return _METHODS[name]


def backbone_kwargs(config: Config) -> dict:
    """The keywords passed to ``model.backbone``'s factory: ``model.backbone_args`` plus the shorthands
    ``model.width`` / ``model.feature_dim`` when set. A keyword the factory does not take is one clear error."""
    m = config.model
    kwargs = dict(m.backbone_args)
    for key in ("width", "feature_dim"):
        if getattr(m, key) is not None:
            kwargs[key] = getattr(m, key)
    try:
        params = inspect.signature(resolve_backbone_factory(m.backbone)).parameters
    except (TypeError, ValueError):
        return kwargs
    if m.backbone.startswith(("timm/", "torchvision/")):
        if m.width is not None or m.feature_dim is not None:
            _no_shorthands(m.backbone)
        return dict(m.backbone_args)  # every option goes to the package's own constructor
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kwargs
    for key in kwargs:
        if key not in params:
            source = f"model.{key}" if key in ("width", "feature_dim") else f"model.backbone_args.{key}"
            valid = [p for p in params if p not in ("in_channels", "image_size")]
            raise ConfigError(
                f"{source} does not apply to backbone {m.backbone!r}.{did_you_mean(key, valid)} "
                f"It takes: {', '.join(valid) or 'no options'}. Set {source}=null to leave it out."
            )
    return kwargs


def _no_shorthands(backbone: str) -> None:
    raise ConfigError(
        f"model.width / model.feature_dim are convnet shorthands and do not apply to {backbone}; set them to null "
        "(and pass the package's own options in model.backbone_args)"
    )


def create_method(config: Config, image_shape: tuple[int, int, int], backbone: nn.Module | None = None) -> Method:
    """Wrap a backbone in ``config.method``'s method.

    backbone: an ``nn.Module`` instance to use (its ``feature_dim`` is read, or found by one dry forward);
    default: built from ``config.model.backbone`` (a registered name or ``package.module:callable``) with
    ``config.model.backbone_args``.
    """
    cls = method_class(config.method.name)
    channels, height, width = image_shape
    size = height if height == width else (height, width)
    if backbone is None:
        backbone = create_backbone(
            config.model.backbone, in_channels=channels, image_size=size, **backbone_kwargs(config)
        )
    else:
        backbone = prepare_backbone(backbone, channels, size)
    method = cls.from_config(backbone, config, image_shape)
    method.image_shape = (channels, height, width)  # what posterior() / represent() check their input against
    c = config.method
    if getattr(c, "loss_prediction", False):  # contrastive configs have it (SimCLRConfig and its subclasses)
        method.attach_loss_predictor(config.model.head_hidden_dim, objective=c.loss_prediction_objective)
    if c.epistemic:
        method.attach_feature_density()
    if c.uncertainty_score is not None:
        _set_default_score(method, c.uncertainty_score)
    return method


def _set_default_score(method: Method, name: str) -> None:
    family = method.posterior_class.uncertainty_kinds()
    extras = method.extra_uncertainty_kinds(fitted_only=False)
    if name not in [*family, *extras]:
        raise ConfigError(
            f"method.uncertainty_score={name!r} is not a score of {method.name}; its scores: "
            f"{', '.join([*family, *extras])}{' (epistemic and combined need method.epistemic=true)' if not extras else ''}"
        )
    method.default_uncertainty = name
