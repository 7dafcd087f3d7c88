"""What an evaluation computes: :class:`EvalOptions` and its quick / default / full modes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from probssl.config import EvalConfig, operational_keys
from probssl.evaluation.ood import DEFAULT_OOD

__all__ = ["EvalOptions", "RUNTIME_KEYS"]

# Config keys that do not change what is trained (dropped when reports group runs by config): the seed and the
# fields probssl.config marks operational (the same set a run may be resumed with other values of).
RUNTIME_KEYS = ("train.seed", *operational_keys())


#: Where the uncertainty scores' network pass runs: float32, or the evaluation's own ``precision``.
SCORE_PRECISIONS = ("fp32", "same")


@dataclass
class EvalOptions:
    """What :func:`evaluate_method` computes. Defaults: every section, sized to take seconds on digits and
    well under a minute per section on MNIST-sized data. :meth:`quick` keeps only the core numbers."""

    representation: str = "auto"  # auto (the method's default) | backbone | mean | direction | sample | bits
    batch_size: int = 1024
    # Autocast of the network during feature extraction: fp32 | bf16 | fp16 (evaluate_run: the run's training
    # precision as train.precision resolves on this machine). Probes, metrics and the posterior head that makes the
    # uncertainty scores: float32 (the scores' backbone pass: score_precision).
    precision: str = "fp32"
    # The backbone pass that makes the per-image uncertainty scores (posterior family's, mc_dispersion, epistemic,
    # combined): "same" (under ``precision``: with bf16 one pass makes every score and the kNN / density features;
    # the posterior's head still runs in float32, unless the method overrides ``posterior``) | "fp32" (a float32 pass
    # of its own, as before 2026-12-08).
    # "same" by evidence: on 5 trained runs its AUROCs were within 0.0023 of fp32's on every score and set, at
    # 1.0-1.7x the speed of the section (benchmarks/score_precision.py; docs/evaluation.md).
    score_precision: str = "same"
    knn_k: tuple[int, ...] = (1, 5, 10, 20, 50)
    linear_weight_decays: tuple[float, ...] = (0.0, 1e-5, 1e-4, 1e-3, 1e-2)
    ood: tuple[str, ...] = DEFAULT_OOD  # synthetic names (SYNTHETIC_OOD) and/or dataset names (DATASETS)
    ood_max_images: int = 2000  # OOD images scored per set (a seeded subset)
    mlp: bool = True
    clustering: bool = True
    information: bool = True
    alignment: bool = True
    alignment_samples: int | None = 2000  # test images (two augmented views each) for alignment
    uncertainty: bool = True
    mc_samples: int = 32  # posterior samples per image for mc_dispersion
    knn_score_k: int = 10
    corruptions: bool = True
    corruption_samples: int | None = 500  # test images corrupted at every severity
    retrieval: tuple[str, ...] = ()  # datasets (NAME or NAME@DIR) for zero-shot R@1 / R-AUROC; + held-out classes
    retrieval_max_images: int | None = 5000  # images per retrieval target (a seeded subset)
    ambiguity: bool = True  # blends and centre crops with a known ambiguity
    ambiguity_samples: int | None = 300  # test images blended (x 6 lambdas) and cropped (x 3 sizes)
    compression: bool = True
    compression_curve: bool | None = None  # linear probe on code prefixes; None = only for compressed codes
    style: bool = True
    style_train_samples: int | None = 2000
    style_test_samples: int | None = 1000
    embedding_map: bool = True
    map_samples: int = 2000  # t-SNE points
    images: bool = True
    max_saved: int = 2000  # per-sample arrays kept in eval.json
    fine_tune: bool = False  # also fine-tune the whole network (slow: trains a copy of the backbone)
    fine_tune_epochs: int = 10
    fine_tune_lr: float = 1e-3
    fine_tune_weight_decay: float = 1e-4
    fine_tune_batch_size: int = 256
    seed: int = 0
    skip: tuple[str, ...] = ()  # sections or parts left out (probssl.evaluation.skip_names())
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)  # plug-in sections' options, by section

    MODES: ClassVar[dict[str, dict[str, Any]]]

    MODES = {
        # Probes (linear, kNN, GMM), geometry, MI and uncertainty/OOD; no MLP, corruptions, style, t-SNE, images.
        "quick": dict(
            mlp=False,
            corruptions=False,
            style=False,
            embedding_map=False,
            images=False,
            compression_curve=False,
            ambiguity=False,
        ),
        "default": {},
        # Every section without subsampling caps (t-SNE points and saved arrays stay capped at 2,000).
        "full": dict(
            alignment_samples=None,
            corruption_samples=None,
            compression_curve=True,
            style_train_samples=None,
            style_test_samples=None,
        ),
    }

    @classmethod
    def make(cls, mode: str = "default", cfg: EvalConfig | None = None, **overrides) -> EvalOptions:
        """Options of ``mode`` (quick | default | full), the run's ``eval`` config section, then ``overrides``."""
        if mode not in cls.MODES:
            raise ValueError(f"unknown evaluation mode {mode!r}; choose from {', '.join(cls.MODES)}")
        base: dict[str, Any] = dict(cls.MODES[mode])
        if cfg is not None:
            base.update(
                representation=cfg.representation,
                batch_size=cfg.batch_size,
                knn_k=tuple(cfg.knn_k),
                linear_weight_decays=tuple(cfg.linear_weight_decays),
                fine_tune=cfg.fine_tune,
                fine_tune_epochs=cfg.fine_tune_epochs,
                fine_tune_lr=cfg.fine_tune_lr,
                fine_tune_weight_decay=cfg.fine_tune_weight_decay,
                fine_tune_batch_size=cfg.fine_tune_batch_size,
            )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def quick(cls, **overrides) -> EvalOptions:
        return cls.make("quick", **overrides)

    @classmethod
    def full(cls, **overrides) -> EvalOptions:
        return cls.make("full", **overrides)

    @classmethod
    def from_config(cls, cfg: EvalConfig | None, **overrides) -> EvalOptions:
        return cls.make("default", cfg or EvalConfig(), **overrides)

    def __post_init__(self) -> None:
        if self.score_precision not in SCORE_PRECISIONS:
            choices = " | ".join(SCORE_PRECISIONS)
            raise ValueError(f"score_precision must be {choices}, got {self.score_precision!r}")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def enabled(self, part: str) -> bool:
        """A boolean option that switches a part (e.g. ``mlp``), False when ``part`` is in ``skip``."""
        return part not in self.skip and getattr(self, part, True) is not False
