"""Trainer callbacks: code that watches (or measures) training without editing the loop.

A callback is any object with some of the methods of :class:`Callback`; the trainer calls each hook
on every callback in order, on every rank (a callback that writes files should check
``trainer.dist.is_main``). Hooks receive the :class:`~probssl.train.Trainer` itself, so they can read
``trainer.method``, ``trainer.step``, ``trainer.epoch``, ``trainer.config`` and ``trainer.run_dir``.

Callbacks must not change what is trained: they may read the method (in ``torch.no_grad()``, and
restoring ``train()`` mode if they switch to ``eval()``) but not step the optimiser, and any random
numbers they draw must come from their own ``torch.Generator`` (the trainer re-seeds the global
generator every step, so a callback cannot disturb the next step's draws either way).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Callback", "default_callbacks", "register_default_callback"]


class Callback:
    """Base class with no-op hooks; subclass and override the ones you need."""

    def on_fit_start(self, trainer: Any) -> None:
        """Before the first step (also when resuming; ``trainer.step`` says where)."""

    def on_step_end(self, trainer: Any, stats: dict[str, float] | None) -> None:
        """After each optimiser step; ``trainer.step`` is already incremented. ``stats`` are the
        step's loss terms, ``loss`` and ``lr`` (None when a non-finite step was skipped)."""

    def on_epoch_end(self, trainer: Any) -> None:
        """After the last step of an epoch, before its checkpoint; ``trainer.epoch`` is incremented."""

    def on_fit_end(self, trainer: Any) -> None:
        """After the final checkpoint of a run that finished (not called on interrupts or errors)."""


# Factories that later layers register (e.g. evaluation's online monitor): each maps a Config to a callback or
# None, and every Trainer built from that config gets them before the callbacks it is given.
_DEFAULT_FACTORIES: list = []


def register_default_callback(factory):
    """Register ``factory(config) -> Callback | None`` for every Trainer (usable as a decorator)."""
    _DEFAULT_FACTORIES.append(factory)
    return factory


def default_callbacks(config) -> list:
    return [cb for cb in (factory(config) for factory in _DEFAULT_FACTORIES) if cb is not None]
