"""A small timm-like registry of model factories.

A :class:`Registry` maps names to factories (classes or functions).  Backbone factories have
the signature ``factory(in_channels: int, image_size: int, **kwargs) -> nn.Module`` and return a
module with an integer ``feature_dim`` attribute; decoder factories (see
:mod:`probssl.models.decoders`) have ``factory(latent_dim, out_shape, **kwargs)``.

Unknown names raise :class:`ValueError` listing every registered name plus a
``difflib`` "did you mean" suggestion.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from torch import nn

__all__ = [
    "Registry",
    "BACKBONES",
    "register_backbone",
    "create_backbone",
    "list_backbones",
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
        msg = f"Unknown {self.kind} {name!r}."
        close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.5)
        if close:
            msg += " Did you mean " + " or ".join(repr(c) for c in close) + "?"
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


def create_backbone(name: str, in_channels: int, image_size: int | tuple[int, int], **kwargs: Any) -> nn.Module:
    """Build the backbone registered as ``name``.

    Args:
        name: a name from :func:`list_backbones` (e.g. ``"convnet"``, ``"resnet18-cifar"``).
        in_channels: image channels (1 for grey, 3 for colour).
        image_size: side of the (square) input images, or an ``(H, W)`` pair.
        **kwargs: forwarded to the factory (e.g. ``feature_dim``, ``width``, ``stem``).

    Returns:
        an ``nn.Module`` mapping ``[N, in_channels, H, W]`` floats to ``[N, feature_dim]``,
        with an integer ``feature_dim`` attribute.

    Raises:
        ValueError: unknown name (the message lists the available names) or bad sizes.
    """
    factory = BACKBONES[name]  # ValueError with suggestions if unknown
    if not isinstance(in_channels, int) or isinstance(in_channels, bool) or in_channels <= 0:
        raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
    _check_image_size(image_size)
    model = factory(in_channels, image_size, **kwargs)
    fd = getattr(model, "feature_dim", None)
    if not isinstance(model, nn.Module) or not isinstance(fd, int):
        raise TypeError(f"backbone factory {name!r} must return an nn.Module with an int feature_dim")
    return model
