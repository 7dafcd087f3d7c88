"""Evaluation sections: one object per metric family, and the context they share.

A section has a ``name`` (its key in eval.json), a ``title`` (its report heading), an ``order`` in the
report and the summary, and

* ``run(ctx) -> dict | None``: compute the section from an :class:`EvalContext` (None: not applicable);
* ``summary(result) -> dict``: its flat headline numbers (eval.json's ``summary``, ``probssl eval``'s
  printout, the report's tables, mean ± s.e. over seeds);
* ``flat(result) -> dict``: further flat numbers that reports aggregate but the summary leaves out;
* ``render(report) -> list[str]`` (optional): Markdown lines for the report (see
  :class:`probssl.report.sections.ReportContext`); without it, the report shows a table of the summary.

``skip_name`` is the word ``probssl eval --skip`` uses for it, and ``parts`` names sub-parts that can be
skipped on their own (e.g. the MLP probe of the probes section). Sections switched by an
:class:`EvalOptions` boolean of the same name keep that switch; a plug-in section is switched by
``EvalOptions.skip`` and reads its own options from ``EvalOptions.extra[name]`` (``option_defaults``).

Register with :func:`register_section` (a new section is one module that does so); evaluation runs the
registered sections in ``order``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from probssl.config import Config
from probssl.data import DataSplits
from probssl.evaluation.features import extract
from probssl.evaluation.options import EvalOptions
from probssl.evaluation.probes import ProbeResult, linear_probe
from probssl.evaluation.scoring import Scorer
from probssl.methods import Method

__all__ = ["EvalContext", "Section", "get_section", "list_sections", "register_section", "skip_names"]


@dataclass
class EvalContext:
    """What every section may use: the method, its splits and options, and products computed once.

    feats: the representation of the train / val / test splits, each [N_split, D] float32 (CPU);
    labels: their labels [N_split]; embedding: the "mean" representation of the test split [N_test, d].
    results: the outputs of the sections run so far, by name; top: extra top-level eval.json keys.
    """

    method: Method
    splits: DataSplits
    opts: EvalOptions
    device: str | torch.device
    config: Config
    kind: str
    feats: list[Tensor]
    labels: list[Tensor]
    embedding: Tensor
    image_dir: Path | None = None
    timing: dict[str, float] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    top: dict[str, Any] = field(default_factory=dict)
    _cache: dict[str, Any] = field(default_factory=dict)

    def option(self, section: str, key: str, default: Any = None) -> Any:
        """A plug-in section's option: ``opts.extra[section][key]``, else ``default``."""
        return (self.opts.extra.get(section) or {}).get(key, default)

    def linear(self) -> ProbeResult:
        """The linear probe on the representation (weight decay selected on val), computed once."""
        if "linear" not in self._cache:
            tic = time.perf_counter()
            f, y = self.feats, self.labels
            self._cache["linear"] = linear_probe(
                f[0], y[0], f[1], y[1], f[2], y[2], weight_decays=self.opts.linear_weight_decays
            )
            self.timing["linear"] = time.perf_counter() - tic
        return self._cache["linear"]

    def correct(self) -> Tensor:
        """[N_test] bool: the linear probe's test predictions are right."""
        return self.linear().test_pred == self.labels[2]

    def cache_backbone_train(self, features: Tensor) -> None:
        """Keep the training split's backbone features [N_train, F] made beside its representation."""
        self._cache["backbone_train"] = features

    def backbone_train(self) -> Tensor:
        """The training split's backbone features [N_train, F] (the representation itself when that is the backbone)."""
        if self.kind == "backbone":
            return self.feats[0]
        if "backbone_train" not in self._cache:
            self._cache["backbone_train"] = extract(
                self.method,
                self.splits.train.images,
                "backbone",
                self.opts.batch_size,
                self.device,
                self.opts.precision,
            )
        return self._cache["backbone_train"]

    def scorer(self) -> Scorer:
        if "scorer" not in self._cache:
            o = self.opts
            self._cache["scorer"] = Scorer(
                self.method,
                self.kind,
                self.feats[0],
                o,
                self.device,
                train_backbone=self.backbone_train(),
                train_labels=self.labels[0] if self.splits.labelled else None,
            )
        return self._cache["scorer"]

    def test_scores(self) -> dict[str, Tensor]:
        """Every uncertainty score of every test image, {name: [N_test]}, computed once."""
        if "test_scores" not in self._cache:
            self._cache["test_scores"] = self.scorer().all(self.splits.test.images, self.feats[2])
        return self._cache["test_scores"]


class Section:
    """Base class of evaluation sections (see the module docstring)."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    order: ClassVar[int] = 100
    skip_name: ClassVar[str | None] = None  # default: name
    parts: ClassVar[tuple[str, ...]] = ()  # EvalOptions booleans of sub-parts, skippable on their own
    default_on: ClassVar[bool] = True  # plug-ins: run unless skipped (False: only when asked for)
    # Skipped, with the reason in eval.json's "skipped", when the data has no labels (unlabelled-folder, a manifest
    # without labels); a label-free section sets False.
    needs_labels: ClassVar[bool] = True
    option_defaults: ClassVar[dict[str, Any]] = {}

    @classmethod
    def skip_word(cls) -> str:
        return cls.skip_name or cls.name

    def enabled(self, opts: EvalOptions) -> bool:
        word = self.skip_word()
        if word in opts.skip or self.name in opts.skip:
            return False
        flag = getattr(opts, word, None)
        if isinstance(flag, bool):
            return flag
        return self.default_on or self.name in opts.extra

    def run(self, ctx: EvalContext) -> dict[str, Any] | None:
        raise NotImplementedError

    def summary(self, result: dict[str, Any]) -> dict[str, Any]:
        return {}

    def flat(self, result: dict[str, Any]) -> dict[str, float]:
        return {}


_SECTIONS: dict[str, Section] = {}


def register_section(section: Section | type[Section]) -> Section | type[Section]:
    """Register a section (instance or class; usable as a class decorator). Re-registering a name replaces it."""
    instance = section() if isinstance(section, type) else section
    if not instance.name:
        raise ValueError(f"section {type(instance).__name__} has no name")
    _SECTIONS[instance.name] = instance
    return section


def unregister_section(name: str) -> None:
    _SECTIONS.pop(name, None)


def list_sections() -> list[Section]:
    """Registered sections in report order."""
    return sorted(_SECTIONS.values(), key=lambda s: (s.order, s.name))


def get_section(name: str) -> Section:
    return _SECTIONS[name]


def skip_names() -> list[str]:
    """Every word ``probssl eval --skip`` accepts: each section's and each skippable part's."""
    words = []
    for section in list_sections():
        words += [section.skip_word(), *section.parts]
    return list(dict.fromkeys(words))
