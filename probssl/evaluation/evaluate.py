"""Evaluate a trained method on its dataset's splits and record how every number was chosen.

:func:`evaluate_run` loads RUN_DIR's latest checkpoint, runs :func:`evaluate_method` and writes
RUN_DIR/eval.json (plus PNG image grids in RUN_DIR/eval_images/). Sections (each switchable through
:class:`EvalOptions`; docs/evaluation.md defines every number):

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

Beside this module: ``options`` (what to compute), ``ood`` (the OOD sets), ``scoring`` (per-image
uncertainty scores), ``visuals`` (t-SNE and image grids).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from probssl.config import Config, ConfigError, EvalConfig
from probssl.data import DataSplits
from probssl.evaluation._utils import json_clean, rounded_floats, subsample_rows
from probssl.evaluation.alignment import alignment, uniformity
from probssl.evaluation.clustering import clustering_scores
from probssl.evaluation.corruptions import CORRUPTIONS, SEVERITIES
from probssl.evaluation.features import extract, extract_embeddings
from probssl.evaluation.finetune import fine_tune
from probssl.evaluation.geometry import covariance_spectrum, effective_rank
from probssl.evaluation.information import mutual_information
from probssl.evaluation.mlp_probe import mlp_probe
from probssl.evaluation.ood import make_ood_images
from probssl.evaluation.options import RUNTIME_KEYS, EvalOptions
from probssl.evaluation.probes import ProbeResult, knn_probe, linear_probe
from probssl.evaluation.scoring import SCORE_DESCRIPTIONS, Scorer
from probssl.evaluation.style import STYLE_TASKS, content_style_probes
from probssl.evaluation.uncertainty import (
    aurc,
    aurc_optimal,
    misclassification_detection,
    ood_detection,
    selective_accuracy_curve,
)
from probssl.evaluation.visuals import images_section, tsne_map
from probssl.methods import Method, create_method
from probssl.train import build_augmenter, load_run, load_splits, to_float_images

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
]

SCHEMA_VERSION = 2

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


# ----------------------------------------------------------------------------- helpers


def _probe_dict(result: ProbeResult) -> dict[str, Any]:
    return {
        "test_acc": result.test_acc,
        "val_acc": result.val_acc,
        "selected": result.selected,
        "val_scores": {str(k): v for k, v in result.val_scores.items()},
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


def representation_bits(method: Method, kind: str, dim: int) -> tuple[int, str]:
    """Storage of one representation in bits, and the rule used.

    bits: one bit per dimension; the method's own ``representation_bits()`` when it has one and ``kind`` is
    its default representation; otherwise 32 bits (float32) per dimension.
    """
    if kind == "bits":
        return dim, "1 bit per dimension (binary code)"
    if hasattr(method, "representation_bits") and kind == method.default_representation:
        return int(method.representation_bits()), f"{type(method).__name__}.representation_bits()"
    return 32 * dim, "32 bits (float32) per dimension"


# ----------------------------------------------------------------------------- scores


# ----------------------------------------------------------------------------- sections


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


def _uncertainty_section(
    scorer: Scorer,
    test_images: Tensor,
    test_feats: Tensor,
    correct: Tensor,
    ood_images: dict[str, Tensor],
    ood_desc: dict[str, str],
    saved_rows: Tensor,
    opts: EvalOptions,
    timing: dict,
) -> dict[str, Any]:
    tic = time.perf_counter()
    test_scores = scorer.all(test_images, test_feats)
    ood_scores = {name: scorer.all(images) for name, images in ood_images.items()}
    scores = {}
    for name, u in test_scores.items():
        coverage, accuracy = selective_accuracy_curve(u, correct, num_points=50)
        risk = aurc(u, correct)
        entry = {
            "description": SCORE_DESCRIPTIONS[name],
            "mean_test": float(u.mean()),
            "std_test": float(u.std()) if len(u) > 1 else 0.0,
            "misclassification": misclassification_detection(u, correct),
            "selective": {
                "coverage": rounded_floats(coverage),
                "accuracy": rounded_floats(accuracy),
                "aurc": risk,
                "aurc_optimal": aurc_optimal(correct),
                "eaurc": risk - aurc_optimal(correct),
            },
            "ood": {
                ood: {**ood_detection(u, ood_scores[ood][name]), "mean_ood": float(ood_scores[ood][name].mean())}
                for ood in ood_images
            },
        }
        scores[name] = entry
    timing["uncertainty"] = time.perf_counter() - tic

    if opts.corruptions:
        tic = time.perf_counter()
        rows = subsample_rows(len(test_images), opts.corruption_samples, opts.seed)
        for name, result in scorer.vs_severity(to_float_images(test_images[rows])).items():
            scores[name]["corruption"] = result
        timing["corruptions"] = time.perf_counter() - tic

    ood_rows = {name: subsample_rows(len(images), opts.max_saved, opts.seed) for name, images in ood_images.items()}
    return {
        "primary": scorer.primary,
        "scores_available": scorer.names,
        "ood_sets": {
            name: {"description": ood_desc[name], "num_images": len(images)} for name, images in ood_images.items()
        },
        "corruption_levels": {name: list(SEVERITIES[name]) for name in CORRUPTIONS} if opts.corruptions else {},
        "corruption_samples": int(min(len(test_images), opts.corruption_samples or len(test_images)))
        if opts.corruptions
        else 0,
        "scores": scores,
        "samples": {
            "test_index": saved_rows.tolist(),
            "test": {name: rounded_floats(u[saved_rows]) for name, u in test_scores.items()},
            "ood": {
                ood: {name: rounded_floats(u[ood_rows[ood]]) for name, u in per.items()}
                for ood, per in ood_scores.items()
            },
        },
    }, test_scores


def _compression_section(
    method: Method, kind: str, feats: list[Tensor], splits: DataSplits, linear_acc: float, opts: EvalOptions
) -> dict[str, Any]:
    dim = int(feats[0].shape[1])
    bits, rule = representation_bits(method, kind, dim)
    c, h, w = splits.image_shape
    input_bits = c * h * w * 8
    out = {
        "representation_bits": bits,
        "bits_rule": rule,
        "input_bits": input_bits,
        "input_bits_rule": f"C*H*W*8 = {c}*{h}*{w}*8",
        "ratio": input_bits / bits,
        "linear_acc": linear_acc,
    }
    bits_per_dim = bits / dim
    do_curve = opts.compression_curve if opts.compression_curve is not None else bits_per_dim < 32
    if do_curve:
        curve, d = [], dim
        while d >= 1 and len(curve) < 6:
            if d == dim:
                acc, val = linear_acc, None
            else:
                result = linear_probe(
                    feats[0][:, :d],
                    splits.train.labels,
                    feats[1][:, :d],
                    splits.val.labels,
                    feats[2][:, :d],
                    splits.test.labels,
                    weight_decays=opts.linear_weight_decays,
                )
                acc, val = result.test_acc, result.val_acc
            curve.append({"dims": d, "bits": int(round(d * bits_per_dim)), "linear_acc": acc, "val_acc": val})
            d //= 2
        out["curve"] = sorted(curve, key=lambda r: r["bits"])
        out["curve_rule"] = "linear probe on the first d dimensions of the code, d = D, D/2, D/4, ..."
    return out


# ----------------------------------------------------------------------------- main entry points


def _summary(m: dict[str, Any]) -> dict[str, Any]:
    """Flat headline numbers (what reports tabulate and average over seeds)."""
    s: dict[str, Any] = {}
    p = m.get("probes", {})
    s["linear_acc"] = p.get("linear", {}).get("test_acc")
    s["knn_acc"] = p.get("knn", {}).get("test_acc")
    if "mlp" in p:
        s["mlp_acc"] = p["mlp"]["test_acc"]
    if "clustering" in p:
        s["gmm_acc"], s["nmi"], s["ari"] = (p["clustering"][k] for k in ("acc", "nmi", "ari"))
    g = m.get("geometry", {})
    s["effective_rank"] = g.get("representation", {}).get("effective_rank")
    s["embedding_effective_rank"] = g.get("embedding", {}).get("effective_rank")
    for space in ("embedding", "representation"):
        for key in ("alignment", "uniformity"):
            if key in g.get(space, {}):
                s[f"{key}" if space == "embedding" else f"{key}/representation"] = g[space][key]
    info = m.get("information")
    if info:
        s["mi_lb_bits"] = info["classifier_lower_bound"]["bits"]
        s["mi_knn_bits"] = info["knn_ross"]["bits"]
        s["label_entropy_bits"] = info["entropy_y"]["bits"]
    u = m.get("uncertainty")
    if u:
        primary = u["scores"][u["primary"]]
        s["uncertainty_score"] = u["primary"]
        s["mean_uncertainty"] = primary["mean_test"]
        s["misclassification_auroc"] = primary["misclassification"]["auroc"]
        s["aurc"] = primary["selective"]["aurc"]
        s["eaurc"] = primary["selective"]["eaurc"]
        for ood, r in primary["ood"].items():
            s[f"ood_auroc/{ood}"] = r["auroc"]
            s[f"ood_fpr95/{ood}"] = r["fpr95"]
        for name, r in primary.get("corruption", {}).items():
            s[f"corruption_spearman/{name}"] = r["spearman"]
    c = m.get("compression")
    if c:
        s["representation_bits"] = c["representation_bits"]
        s["compression_ratio"] = c["ratio"]
    cs = m.get("content_style")
    if cs:
        for task, r in cs.items():
            s["content_acc" if task == "content" else f"style_acc/{task}"] = r["acc"]
    return s


def evaluate_method(
    method: Method,
    splits: DataSplits,
    options: EvalOptions | EvalConfig | None = None,
    device: str | torch.device = "cpu",
    config: Config | None = None,
    image_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Every section of the evaluation for one method on ``splits``. Returns a JSON-able dict.

    ``options``: :class:`EvalOptions` (an :class:`EvalConfig` is converted). ``config``: the run's config
    (augmenter for alignment, data_dir for OOD datasets, recorded for grouping); defaults are used without
    it. ``image_dir``: where image grids are written (no images without it).
    """
    opts = options if isinstance(options, EvalOptions) else EvalOptions.from_config(options)
    config = config or Config()
    if torch.device(device).type == "cpu":
        # As in training: the probes' Adam moments and L-BFGS updates drift into denormal floats, which x86
        # handles in microcode (many times slower steps).
        torch.set_flush_denormal(True)
    tic_total = time.perf_counter()
    timing: dict[str, float] = {}
    method.eval()
    kind = method.default_representation if opts.representation == "auto" else opts.representation
    try:  # an impossible choice (e.g. bits of a Gaussian posterior) is the user's to fix: one clear error
        extract(method, splits.test.images[:2], kind, opts.batch_size, device)
    except ValueError as err:
        raise ConfigError(f"representation {kind!r} cannot be evaluated for {method.name}: {err}") from err
    labels = [splits.train.labels, splits.val.labels, splits.test.labels]

    tic = time.perf_counter()
    feats = [
        extract(method, split.images, kind, opts.batch_size, device)
        for split in (splits.train, splits.val, splits.test)
    ]
    embedding = extract_embeddings(method, splits.test.images, opts.batch_size, device)
    timing["features"] = time.perf_counter() - tic

    # ---- probes
    tic = time.perf_counter()
    linear, linear_pred = linear_probe_predictions(
        feats[0], labels[0], feats[1], labels[1], feats[2], labels[2], weight_decays=opts.linear_weight_decays
    )
    correct = linear_pred == labels[2]
    knn = knn_probe(feats[0], labels[0], feats[1], labels[1], feats[2], labels[2], ks=opts.knn_k)
    probes: dict[str, Any] = {"linear": _probe_dict(linear), "knn": _probe_dict(knn)}
    timing["linear+knn"] = time.perf_counter() - tic
    if opts.mlp:
        tic = time.perf_counter()
        # >= ~20 steps per epoch on small training sets (1024-row batches would give digits 2 steps an epoch)
        mlp_batch = int(min(1024, max(32, math.ceil(len(feats[0]) / 20))))
        probes["mlp"] = _probe_dict(
            mlp_probe(
                feats[0], labels[0], feats[1], labels[1], feats[2], labels[2], batch_size=mlp_batch, seed=opts.seed
            )
        )
        probes["mlp"]["batch_size"] = mlp_batch
        timing["mlp"] = time.perf_counter() - tic
    if opts.clustering:
        tic = time.perf_counter()
        probes["clustering"] = {
            **clustering_scores(feats[2], labels[2], seed=opts.seed),
            "num_clusters": splits.num_classes,
            "split": "test",
            "method": "diagonal GMM (EM, k-means init) on standardised features, PCA to 32 "
            "dims; Hungarian-matched accuracy, NMI (arithmetic), ARI",
        }
        timing["clustering"] = time.perf_counter() - tic

    # ---- geometry
    tic = time.perf_counter()
    geometry: dict[str, Any] = {
        "representation": {
            "dim": int(feats[2].shape[1]),
            "effective_rank": effective_rank(feats[2]),
            "spectrum": rounded_floats(covariance_spectrum(feats[2]), 8),
        },
        "embedding": {
            "dim": int(embedding.shape[1]),
            "effective_rank": effective_rank(embedding),
            "spectrum": rounded_floats(covariance_spectrum(embedding), 8),
        },
        "split": "test",
    }
    if opts.alignment:
        rows = subsample_rows(len(splits.test), opts.alignment_samples, opts.seed)
        augmenter = build_augmenter(config, splits.image_shape)
        views = augmenter(splits.test.images[rows], views=2, generator=torch.Generator().manual_seed(opts.seed))
        for space, rep_kind in (("embedding", "mean"), ("representation", kind)):
            z1, z2 = (extract(method, v, rep_kind, opts.batch_size, device) for v in views)
            geometry[space]["alignment"] = alignment(z1, z2)
            z = embedding if space == "embedding" else feats[2]
            geometry[space]["uniformity"] = uniformity(z, max_samples=2000, seed=opts.seed)
        geometry["alignment_protocol"] = (
            f"alignment: mean squared distance between the L2-normalised codes of two views of {len(rows)} test "
            f"images augmented with the run's own augmenter (recipe {config.augment.recipe!r}); uniformity: "
            "log mean exp(-2 squared distance) over all pairs of <= 2000 normalised test codes"
        )
    timing["geometry"] = time.perf_counter() - tic

    # ---- information
    information = None
    if opts.information:
        tic = time.perf_counter()
        information = mutual_information(feats[0], labels[0], feats[2], labels[2], seed=opts.seed)
        timing["information"] = time.perf_counter() - tic

    # ---- uncertainty
    saved_rows = subsample_rows(len(splits.test), opts.max_saved, opts.seed)
    scorer = Scorer(method, kind, feats[0], opts, device, example=splits.test.images[:2])
    uncertainty_out, test_scores = None, None
    if opts.uncertainty:
        ood_images, ood_desc = {}, {}
        for name in opts.ood:
            ood_images[name], ood_desc[name] = make_ood_images(name, splits, config, opts.seed, opts.ood_max_images)
        uncertainty_out, test_scores = _uncertainty_section(
            scorer, splits.test.images, feats[2], correct, ood_images, ood_desc, saved_rows, opts, timing
        )
        uncertainty_out["samples"]["labels"] = labels[2][saved_rows].tolist()
        uncertainty_out["samples"]["correct"] = correct[saved_rows].tolist()

    # ---- compression
    compression = None
    if opts.compression:
        tic = time.perf_counter()
        compression = _compression_section(method, kind, feats, splits, linear.test_acc, opts)
        timing["compression"] = time.perf_counter() - tic

    # ---- content vs style
    content_style = None
    if opts.style:
        tic = time.perf_counter()
        tr = subsample_rows(len(splits.train), opts.style_train_samples, opts.seed)
        te = subsample_rows(len(splits.test), opts.style_test_samples, opts.seed)
        content_style = content_style_probes(
            lambda x: method.represent(x.to(device), kind).float(),
            splits.train.images[tr],
            labels[0][tr],
            splits.test.images[te],
            labels[2][te],
            seed=opts.seed,
            batch_size=opts.batch_size,
        )
        timing["content_style"] = time.perf_counter() - tic

    # ---- 2-D map
    embedding_map = None
    if opts.embedding_map and len(splits.test) >= 5:
        tic = time.perf_counter()
        rows = subsample_rows(len(splits.test), opts.map_samples, opts.seed)
        coords = tsne_map(feats[2][rows], opts.seed)
        embedding_map = {
            "method": "t-SNE (sklearn, perplexity min(30, (n-1)/3), PCA init) of the standardised test representations",
            "index": rows.tolist(),
            "x": rounded_floats(coords[:, 0], 4),
            "y": rounded_floats(coords[:, 1], 4),
            "labels": labels[2][rows].tolist(),
            "correct": correct[rows].tolist(),
        }
        if test_scores is not None:
            embedding_map["uncertainty"] = rounded_floats(test_scores[scorer.primary][rows])
            embedding_map["uncertainty_score"] = scorer.primary
        timing["embedding_map"] = time.perf_counter() - tic

    # ---- images
    images = {}
    if opts.images and image_dir is not None:
        tic = time.perf_counter()
        primary_scores = (
            test_scores[scorer.primary] if test_scores is not None else scorer.score(splits.test.images, scorer.primary)
        )
        images = images_section(method, splits, scorer.primary, primary_scores, Path(image_dir), opts, device)
        timing["images"] = time.perf_counter() - tic

    # ---- fine-tuning (opt-in: it trains a copy of the whole network)
    fine_tuning = None
    if opts.fine_tune:
        if config is None:
            raise ValueError("fine-tuning needs the run's config (its augmentation recipe)")
        tic = time.perf_counter()
        fine_tuning = fine_tune(
            method, splits, config, epochs=opts.fine_tune_epochs, lr=opts.fine_tune_lr, device=device, seed=opts.seed
        )
        timing["fine_tuning"] = time.perf_counter() - tic

    c, h, w = splits.image_shape
    metrics: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "representation": {
            "kind": kind,
            "dim": int(feats[0].shape[1]),
            "description": REPRESENTATION_DESCRIPTIONS[kind],
            "embedding": "mean",
            "embedding_dim": int(embedding.shape[1]),
        },
        "splits": {
            "dataset": splits.name,
            "train": len(splits.train),
            "val": len(splits.val),
            "test": len(splits.test),
            "num_classes": splits.num_classes,
            "classes": list(splits.train.classes),
            "image_shape": [c, h, w],
            "val_fraction": config.data.val_fraction,
            "split_seed": config.data.split_seed,
            "train_subset": config.data.train_subset,
            "rule": "hyper-parameters selected on val; every reported number is on test (features of "
            "train fit the probes)",
        },
        "selection": _selection_rules(opts),
        "protocol": PROTOCOL,
        "options": opts.to_dict(),
        "probes": probes,
        "geometry": geometry,
        "information": information,
        "uncertainty": uncertainty_out,
        "compression": compression,
        "content_style": content_style,
        "style_tasks": {t: STYLE_TASKS[t].description for t in (content_style or {}) if t in STYLE_TASKS},
        "embedding_map": embedding_map,
        "images": images,
        "fine_tuning": fine_tuning,
    }
    metrics = {k: v for k, v in metrics.items() if v is not None}
    metrics["summary"] = _summary(metrics)
    if fine_tuning is not None:
        metrics["summary"]["fine_tune_acc"] = fine_tuning["test_acc"]
    # Flat aliases kept for older callers (probssl train --eval, README).
    metrics["linear_acc"] = linear.test_acc
    metrics["knn_acc"] = knn.test_acc
    metrics["effective_rank"] = geometry["representation"]["effective_rank"]
    if method.probabilistic and test_scores is not None:
        metrics["mean_uncertainty"] = float(test_scores["posterior"].mean())
    timing["total"] = time.perf_counter() - tic_total
    metrics["timing"] = {k: round(v, 3) for k, v in timing.items()}
    metrics["eval_seconds"] = round(timing["total"], 2)
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
    **overrides,
) -> dict[str, Any]:
    """Load RUN_DIR's latest checkpoint, evaluate it, and write RUN_DIR/eval.json (+ RUN_DIR/eval_images/).

    Options: ``options`` if given, else ``EvalOptions.make(mode, <the run's eval config>, **overrides)``
    (e.g. ``mlp=False``); ``representation`` and ``ood`` override the corresponding options either way.
    """
    run_dir = Path(run_dir)
    config, method, state = load_run(run_dir, device)
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
        (run_dir / "eval.json").write_text(json.dumps(metrics, indent=1))
    return metrics
