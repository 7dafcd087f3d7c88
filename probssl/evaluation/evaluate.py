"""Evaluate a trained method on its dataset's splits and record how every number was chosen.

:func:`evaluate_run` loads RUN_DIR's latest checkpoint, runs :func:`evaluate_method` and writes
RUN_DIR/eval.json (plus PNG image grids in RUN_DIR/eval_images/). The work is done by the registered
sections (:mod:`probssl.evaluation.sections`, one module each, switchable through :class:`EvalOptions` and
``probssl eval --skip``; docs/evaluation.md defines every number):

* probes       -- linear (L-BFGS logistic regression), MLP, weighted-cosine kNN, GMM clustering
                  (Hungarian accuracy, NMI, ARI)
* geometry     -- covariance spectrum and effective rank of the representation and of the embedding,
                  alignment (two augmented views) and uniformity (Wang & Isola 2020)
* information  -- I(Z; Y) by a classifier lower bound and by the Ross (2014) kNN estimator
* uncertainty  -- per-image scores (posterior, Monte-Carlo dispersion, kNN distance), OOD detection,
                  misclassification detection, selective accuracy / AURC, uncertainty vs corruption
* compression  -- bits of one representation vs bits of the raw image, and the accuracy at that size
* content_style-- class probe next to probes for rotation, scale, shift, brightness (, thickness)
* embedding_map-- t-SNE of at most 2,000 test representations, with labels and uncertainties
* images       -- most / least certain test images, reconstructions and samples (generative methods)

Rules: every hyper-parameter (weight decay, k, MLP epoch) is selected on the validation split; the test
split is scored once with the selection. Per-sample arrays kept in eval.json are subsampled to at most
``EvalOptions.max_saved`` (2,000) rows with a fixed seed.

Unlabelled data (``unlabelled-folder``, a manifest without labels): every section that needs labels (a class
``needs_labels``) is skipped and eval.json's ``skipped`` names it with the reason; the label-free ones (geometry:
effective rank, spectrum, alignment, uniformity) run as usual.

Beside this module: ``options`` (what to compute), ``sections`` (the sections), ``ood`` (the OOD sets),
``scoring`` (per-image uncertainty scores), ``visuals`` (t-SNE and image grids).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from probssl.config import Config, ConfigError, EvalConfig
from probssl.data import DataError, DataSplits, load_splits
from probssl.data.resident import resident_splits
from probssl.evaluation._utils import json_clean
from probssl.evaluation.features import extract, extract_many
from probssl.evaluation.geometry import effective_rank
from probssl.evaluation.options import RUNTIME_KEYS, EvalOptions
from probssl.evaluation.probes import ProbeResult, knn_probe, linear_probe
from probssl.evaluation.sections import EvalContext, list_sections
from probssl.evaluation.sections.compression import representation_bits
from probssl.methods import Method, create_method
from probssl.train import load_run
from probssl.train.device import choose_precision
from probssl.train.logging import write_json_atomic

__all__ = [
    "PROTOCOL",
    "REPRESENTATION_DESCRIPTIONS",
    "SCHEMA_VERSION",
    "evaluate_baselines",
    "evaluate_method",
    "evaluate_run",
    "linear_probe_predictions",
    "probe_representations",
    "representation_bits",
    "summarize",
]

SCHEMA_VERSION = 3  # 3: sections from the registry (same keys as 2, plus options.skip / options.extra)

PROTOCOL = (
    "features extracted without augmentation in eval mode; linear probe = multinomial logistic "
    "regression (L-BFGS) on standardised features, weight decay selected on the validation split; "
    "kNN = cosine, exp(sim/0.07)-weighted votes, k selected on the validation split; both scored once "
    "on the test split"
)

REPRESENTATION_DESCRIPTIONS = {
    "backbone": "backbone features f(x), before any head",
    "mean": "posterior mean of q(z|x): the mean direction m/||m|| for sphere posteriors, the mean m for "
    "Gaussian ones, the embedding itself for deterministic methods",
    "direction": "the posterior mean normalised to unit length",
    "sample": "one random draw z ~ q(z|x) per image (stochastic)",
    "bits": "the hard code 1[p > 1/2] of a Bernoulli posterior (SCL-Bernoulli)",
}


def linear_probe_predictions(
    train_x: Tensor,
    train_y: Tensor,
    val_x: Tensor,
    val_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    weight_decays=(0.0, 1e-5, 1e-4, 1e-3, 1e-2),
    max_iter: int = 200,
) -> tuple[ProbeResult, Tensor]:
    """``probes.linear_probe`` and the selected model's test predictions [N_test] int64."""
    result = linear_probe(train_x, train_y, val_x, val_y, test_x, test_y, weight_decays, max_iter)
    return result, result.test_pred


def probe_representations(train_x, val_x, test_x, splits: DataSplits, cfg: EvalConfig | EvalOptions) -> dict[str, Any]:
    """Linear probe + kNN + effective rank of already-extracted features [N_split, D] (used for baselines)."""
    s = splits
    linear = linear_probe(
        train_x,
        s.train.labels,
        val_x,
        s.val.labels,
        test_x,
        s.test.labels,
        weight_decays=tuple(cfg.linear_weight_decays),
    )
    knn = knn_probe(train_x, s.train.labels, val_x, s.val.labels, test_x, s.test.labels, ks=tuple(cfg.knn_k))
    return {
        "linear_acc": linear.test_acc,
        "linear_val_acc": linear.val_acc,
        "linear_weight_decay": linear.selected["weight_decay"],
        "knn_acc": knn.test_acc,
        "knn_val_acc": knn.val_acc,
        "knn_k": knn.selected["k"],
        "effective_rank": effective_rank(test_x),
        "feature_dim": int(train_x.shape[1]),
    }


def _selection_rules(opts: EvalOptions) -> dict[str, str]:
    return {
        "linear": f"weight decay in {list(opts.linear_weight_decays)} with the highest validation accuracy "
        "(fitted strongest first, warm-started); ties -> the stronger decay",
        "knn": f"k in {list(opts.knn_k)} with the highest validation accuracy; ties -> the smaller k",
        "mlp": "(weight decay, epoch) with the highest validation accuracy (early stopping)",
        "clustering": "none: GMM fitted on the test features without labels, number of clusters = classes",
        "mi_classifier": "weight decay with the lowest cross-entropy on 10% of the training rows",
        "misclassification": "errors of the linear probe selected above, on the test split",
        "style": "weight decay on a random 10% of the transformed training subset",
        "ood": "none: threshold-free metrics (AUROC, AUPR) and FPR at 95% TPR",
    }


def summarize(metrics: dict[str, Any]) -> dict[str, Any]:
    """Flat headline numbers of an eval.json-like dict: every registered section's ``summary``, in order."""
    out: dict[str, Any] = {}
    for section in list_sections():
        if metrics.get(section.name):
            out.update(section.summary(metrics[section.name]))
    return out


def _context(method: Method, splits: DataSplits, opts: EvalOptions, device, config: Config, image_dir) -> EvalContext:
    """Extract the three splits' representations (and the test embedding) once, for every section."""
    kind = method.default_representation if opts.representation == "auto" else opts.representation
    try:  # an impossible choice (e.g. bits of a Gaussian posterior) is the user's to fix: one clear error
        extract(method, splits.test.images[:2], kind, opts.batch_size, device)
    except ValueError as err:
        raise ConfigError(f"representation {kind!r} cannot be evaluated for {method.name}: {err}") from err
    tic = time.perf_counter()
    p = opts.precision
    # One pass per split: the training split's backbone features ride along when the uncertainty scores will
    # want them (the density score), the test split's embedding (its "mean") always.
    with_backbone = opts.uncertainty and kind != "backbone"
    train = extract_many(
        method, splits.train.images, [kind, "backbone"] if with_backbone else [kind], opts.batch_size, device, p
    )
    val = extract(method, splits.val.images, kind, opts.batch_size, device, p)  # in split order: 'sample' draws
    test = extract_many(method, splits.test.images, [kind, "mean"], opts.batch_size, device, p)
    feats = [train[kind], val, test[kind]]
    labels = [splits.train.labels, splits.val.labels, splits.test.labels]
    ctx = EvalContext(method, splits, opts, device, config, kind, feats, labels, test["mean"], image_dir)
    if with_backbone:
        ctx.cache_backbone_train(train["backbone"])
    ctx.timing["features"] = time.perf_counter() - tic
    return ctx


def _header(ctx: EvalContext) -> dict[str, Any]:
    """eval.json's description of what was evaluated: representation, splits, rules, options."""
    splits, config, opts = ctx.splits, ctx.config, ctx.opts
    return {
        "schema": SCHEMA_VERSION,
        "representation": {
            "kind": ctx.kind,
            "dim": int(ctx.feats[0].shape[1]),
            "description": REPRESENTATION_DESCRIPTIONS[ctx.kind],
            "embedding": "mean",
            "embedding_dim": int(ctx.embedding.shape[1]),
        },
        "splits": {
            "dataset": splits.name,
            "train": len(splits.train),
            "val": len(splits.val),
            "test": len(splits.test),
            "num_classes": splits.num_classes,
            "classes": list(splits.train.classes),
            "image_shape": list(splits.image_shape),
            "val_fraction": config.data.val_fraction,
            "split_seed": config.data.split_seed,
            "train_subset": config.data.train_subset,
            "rule": "hyper-parameters selected on val; every reported number is on test (features of "
            "train fit the probes)",
        },
        "selection": _selection_rules(opts),
        "protocol": PROTOCOL,
        "options": opts.to_dict(),
    }


def _check_training_split(splits: DataSplits, config: Config | None) -> None:
    """The probes and the uncertainty scores' class-conditional Gaussians are fitted on the training split; with no
    more images than classes there is no within-class spread to fit, so say so instead of failing mid-way."""
    labels = splits.train.labels
    n, k = len(splits.train), int(torch.unique(labels).numel()) if labels is not None else 1
    if n <= k:
        subset = config.data.train_subset if config is not None else None
        cause = f" (data.train_subset={subset})" if subset is not None else ""
        raise DataError(
            f"the training split has {n} image(s) of {k} class(es){cause}: the evaluation fits its probes and "
            "class-conditional densities on it, which needs more images than classes. Train and evaluate with a "
            "larger training set (e.g. data.train_subset=100)."
        )


def evaluate_method(
    method: Method,
    splits: DataSplits,
    options: EvalOptions | EvalConfig | None = None,
    device: str | torch.device = "cpu",
    config: Config | None = None,
    image_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Every enabled section of the evaluation for one method on ``splits``. Returns a JSON-able dict.

    ``options``: :class:`EvalOptions` (an :class:`EvalConfig` is converted). ``config``: the run's config
    (augmenter for alignment, data_dir for OOD datasets, recorded for grouping); defaults are used without
    it. ``image_dir``: where image grids are written (no images without it).
    """
    opts = options if isinstance(options, EvalOptions) else EvalOptions.from_config(options)
    if torch.device(device).type == "cpu":
        # As in training: the probes' Adam moments and L-BFGS updates drift into denormal floats, which x86
        # handles in microcode (many times slower steps).
        torch.set_flush_denormal(True)
    tic_total = time.perf_counter()
    method.eval()
    # A split streamed from its files (data.in_memory) is decoded here: sections index and reshape whole splits.
    splits, streamed = resident_splits(splits, seed=opts.seed)
    _check_training_split(splits, config)
    ctx = _context(method, splits, opts, device, config or Config(), image_dir)
    skipped = {}
    for section in list_sections():
        if section.enabled(opts) and section.needs_labels and not splits.labelled:
            skipped[section.name] = f"needs labels; {splits.name} has none (unlabelled images)"
        elif section.enabled(opts):
            tic = time.perf_counter()
            result = section.run(ctx)
            if result is not None:
                ctx.results[section.name] = result
            ctx.timing.setdefault(section.name, time.perf_counter() - tic)
    metrics = {**_header(ctx), **({"streamed_data": streamed} if streamed else {}), **ctx.results, **ctx.top}
    if skipped:
        metrics["skipped"] = skipped
    metrics["summary"] = summarize(metrics)
    # Flat aliases kept for older callers (probssl train --eval, README).
    for key in ("linear_acc", "knn_acc", "effective_rank", "mean_uncertainty"):
        if key in metrics["summary"] and (key != "mean_uncertainty" or method.probabilistic):
            metrics[key] = metrics["summary"][key]
    ctx.timing["total"] = time.perf_counter() - tic_total
    metrics["timing"] = {k: round(v, 3) for k, v in ctx.timing.items()}
    metrics["eval_seconds"] = round(ctx.timing["total"], 2)
    return json_clean(metrics)


def evaluate_baselines(config: Config, splits: DataSplits, cfg: EvalConfig | None = None) -> dict[str, Any]:
    """Reference points for reading the numbers: raw pixels, and the same backbone at random init."""
    cfg = cfg or EvalConfig()
    raw = [split.images.flatten(1).float() / 255 for split in (splits.train, splits.val, splits.test)]
    torch.manual_seed(config.train.seed)
    random_method = create_method(config, splits.image_shape).eval()
    rand = [
        extract(random_method, split.images, "backbone", cfg.batch_size)
        for split in (splits.train, splits.val, splits.test)
    ]
    return {
        "raw_pixels": probe_representations(*raw, splits, cfg),
        "random_encoder": probe_representations(*rand, splits, cfg),
    }


def evaluate_run(
    run_dir: str | Path,
    representation: str | None = None,
    device: str = "cpu",
    write: bool = True,
    options: EvalOptions | None = None,
    ood: list[str] | tuple[str, ...] | None = None,
    mode: str = "default",
    progress: Callable[[str], None] | None = None,
    checkpoint: str | None = None,
    **overrides,
) -> dict[str, Any]:
    """Load RUN_DIR's latest checkpoint, evaluate it, and write RUN_DIR/eval.json (+ RUN_DIR/eval_images/).

    Options: ``options`` if given, else ``EvalOptions.make(mode, <the run's eval config>, **overrides)``
    (e.g. ``mlp=False``); ``representation`` and ``ood`` override the corresponding options either way.
    """
    run_dir = Path(run_dir)
    config, method, state = load_run(run_dir, device, checkpoint=checkpoint)
    if options is None and "precision" not in overrides:  # extract features in the run's training precision
        overrides["precision"] = choose_precision(config.train.precision, torch.device(device)).precision
    opts = options or EvalOptions.make(mode, config.eval, **overrides)
    if representation is not None:
        opts = dataclasses.replace(opts, representation=representation)
    if ood is not None:
        opts = dataclasses.replace(opts, ood=tuple(ood))
    if progress:
        progress(f"evaluating {run_dir} ({config.method.name} on {config.data.name})")
    splits = load_splits(config.data)
    metrics = evaluate_method(
        method, splits, opts, device, config=config, image_dir=run_dir / "eval_images" if write else None
    )
    if metrics.get("images"):
        metrics["images"] = {k: str(Path(v).relative_to(run_dir)) for k, v in metrics["images"].items()}
    metrics["run"] = {
        "run_dir": str(run_dir),
        "method": config.method.name,
        "dataset": config.data.name,
        "step": state.step,
        "epoch": state.epoch,
        "seed": config.train.seed,
        "probabilistic": bool(method.probabilistic),
        "generative": bool(hasattr(method, "reconstruct") or hasattr(method, "sample")),
    }
    metrics["config"] = config.to_dict()
    metrics["runtime_config_keys"] = list(RUNTIME_KEYS)
    # Flat aliases kept for older callers.
    metrics.update(
        {
            "run_dir": str(run_dir),
            "method": config.method.name,
            "dataset": config.data.name,
            "step": state.step,
            "epoch": state.epoch,
            "seed": config.train.seed,
        }
    )
    if write:
        write_json_atomic(run_dir / "eval.json", metrics)  # a reader never sees half a file
    return metrics
