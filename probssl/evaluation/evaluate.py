"""Evaluate a trained method on its dataset's splits and record how every number was chosen."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from probssl.config import Config, EvalConfig
from probssl.data import DataSplits
from probssl.evaluation.features import extract, extract_embeddings, extract_uncertainty
from probssl.evaluation.geometry import covariance_spectrum, effective_rank
from probssl.evaluation.probes import knn_probe, linear_probe
from probssl.methods import Method, create_method
from probssl.train import load_run, load_splits

PROTOCOL = ("features extracted without augmentation in eval mode; linear probe = multinomial logistic "
            "regression (L-BFGS) on standardised features, weight decay selected on the validation split; "
            "kNN = cosine, exp(sim/0.07)-weighted votes, k selected on the validation split; both scored once "
            "on the test split")


def probe_representations(train_x, val_x, test_x, splits: DataSplits, cfg: EvalConfig) -> dict[str, Any]:
    """Linear probe + kNN + effective rank of already-extracted features [N_split, D]."""
    s = splits
    linear = linear_probe(train_x, s.train.labels, val_x, s.val.labels, test_x, s.test.labels,
                          weight_decays=tuple(cfg.linear_weight_decays))
    knn = knn_probe(train_x, s.train.labels, val_x, s.val.labels, test_x, s.test.labels, ks=tuple(cfg.knn_k))
    return {
        "linear_acc": linear.test_acc, "linear_val_acc": linear.val_acc,
        "linear_weight_decay": linear.selected["weight_decay"],
        "knn_acc": knn.test_acc, "knn_val_acc": knn.val_acc, "knn_k": knn.selected["k"],
        "effective_rank": effective_rank(test_x), "feature_dim": int(train_x.shape[1]),
    }


def evaluate_method(method: Method, splits: DataSplits, cfg: EvalConfig | None = None,
                    device: str | torch.device = "cpu") -> dict[str, Any]:
    """All issue-2 metrics for one method. Returns a JSON-able dict."""
    cfg = cfg or EvalConfig()
    tic = time.perf_counter()
    kind = method.default_representation if cfg.representation == "auto" else cfg.representation
    feats = [extract(method, split.images, kind, cfg.batch_size, device)
             for split in (splits.train, splits.val, splits.test)]
    metrics = probe_representations(*feats, splits, cfg)
    embedding = extract_embeddings(method, splits.test.images, cfg.batch_size, device)
    metrics.update({
        "representation": kind,
        "embedding_dim": int(embedding.shape[1]),
        "embedding_effective_rank": effective_rank(embedding),
        "embedding_spectrum": covariance_spectrum(embedding).tolist(),
        "feature_spectrum": covariance_spectrum(feats[2]).tolist(),
    })
    if method.probabilistic:
        uncertainty = extract_uncertainty(method, splits.test.images, cfg.batch_size, device)
        metrics["mean_uncertainty"] = float(uncertainty.mean())
        metrics["uncertainty_test"] = uncertainty.tolist()
    metrics["splits"] = {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)}
    metrics["protocol"] = PROTOCOL
    metrics["eval_seconds"] = round(time.perf_counter() - tic, 2)
    return metrics


def evaluate_baselines(config: Config, splits: DataSplits, cfg: EvalConfig | None = None) -> dict[str, Any]:
    """Reference points for reading the numbers: raw pixels, and the same backbone at random init."""
    cfg = cfg or EvalConfig()
    raw = [split.images.flatten(1).float() / 255 for split in (splits.train, splits.val, splits.test)]
    torch.manual_seed(config.train.seed)
    random_method = create_method(config, splits.image_shape).eval()
    rand = [extract(random_method, split.images, "backbone", cfg.batch_size)
            for split in (splits.train, splits.val, splits.test)]
    return {"raw_pixels": probe_representations(*raw, splits, cfg),
            "random_encoder": probe_representations(*rand, splits, cfg)}


def evaluate_run(run_dir: str | Path, representation: str | None = None, device: str = "cpu",
                 write: bool = True) -> dict[str, Any]:
    """Load RUN_DIR's latest checkpoint, evaluate it, and write RUN_DIR/eval.json."""
    run_dir = Path(run_dir)
    config, method, state = load_run(run_dir, device)
    if representation is not None:
        config.eval.representation = representation
    splits = load_splits(config)
    metrics = evaluate_method(method, splits, config.eval, device)
    metrics.update({"run_dir": str(run_dir), "method": config.method.name, "dataset": config.data.name,
                    "step": state.step, "epoch": state.epoch, "seed": config.train.seed})
    if write:
        (run_dir / "eval.json").write_text(json.dumps(metrics, indent=1))
    return metrics
