"""Embeddings and uncertainties for new images: ``probssl embed`` / :func:`embed`.

One row per image: its index in the split, its label (if the data has labels), the evaluated representation,
the posterior's deterministic summary (``mean_direction``), every uncertainty score the evaluation computes
(the posterior family's named scores, MC dispersion, kNN distance, density, a loss predictor's), and the kNN
prediction against the run's own training split (when it has labels). Written as ``.npz`` (arrays), ``.csv`` (one column per
number) or ``.parquet`` (when pyarrow is installed). Batched, with a progress bar.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from probssl.data import DataError, DataSplits, ImageDataset, load_splits, to_float_images
from probssl.evaluation.features import extract
from probssl.evaluation.ood import adapt_images, other_dataset
from probssl.evaluation.options import EvalOptions
from probssl.evaluation.probes import knn_predict
from probssl.evaluation.scoring import Scorer
from probssl.train import load_run

__all__ = ["embed", "write_embeddings"]


def _dataset(spec: str, splits: DataSplits, config, split: str) -> ImageDataset:
    """The run's own dataset (by name) or another registered one (NAME or NAME@DIR), converted to its shape."""
    name = spec.partition("@")[0]
    if name == splits.name and "@" not in spec:
        return getattr(splits, split)
    other = other_dataset(spec, splits, config, split)
    return dataclasses.replace(other, images=adapt_images(other.images, splits.image_shape))


def embed(
    run_dir: str | Path,
    data: str | None = None,
    split: str = "test",
    device: str = "cpu",
    batch_size: int = 512,
    checkpoint: str | None = None,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """{column: array [N, ...]} for every image of ``data``'s ``split`` (default: the run's own dataset)."""
    config, method, _ = load_run(run_dir, device, checkpoint=checkpoint)
    splits = load_splits(config.data)
    if split not in ("train", "val", "test"):
        raise DataError(f"--split must be train, val or test, got {split!r}")
    target = _dataset(data or splits.name, splits, config, split)
    kind = method.default_representation
    opts = EvalOptions(batch_size=batch_size)
    train_x = extract(method, splits.train.images, kind, batch_size, device)
    backbone = train_x if kind == "backbone" else extract(method, splits.train.images, "backbone", batch_size, device)
    labels = splits.train.labels if splits.labelled else None  # unlabelled: no kNN prediction, one density
    scorer = Scorer(method, kind, train_x, opts, device, train_backbone=backbone, train_labels=labels)
    columns: dict[str, list] = {}
    bar = tqdm(total=len(target), disable=not progress, unit="img", desc="embed")
    for start in range(0, len(target), batch_size):
        images = target.images[start : start + batch_size]
        feats = extract(method, images, kind, batch_size, device)
        with torch.no_grad():
            direction = method.posterior(to_float_images(images.to(device))).mean_direction.float().cpu()
        parts = {
            "index": torch.arange(start, start + len(images)),
            "label": target.labels[start : start + len(images)],
            "representation": feats,
            "mean_direction": direction,
        }
        if labels is not None:
            parts["knn_prediction"] = knn_predict(train_x, labels, feats, 20, splits.num_classes)
        parts.update({f"uncertainty/{k}": v for k, v in scorer.all(images, feats).items()})
        for key, value in parts.items():
            columns.setdefault(key, []).append(value)
        bar.update(len(images))
    bar.close()
    return {k: torch.cat(v).numpy() for k, v in columns.items()}


def write_embeddings(rows: dict[str, np.ndarray], path: str | Path) -> Path:
    """``.npz`` (one array per column), ``.csv`` / ``.parquet`` (vector columns spread over ``name_0..``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npz":
        np.savez(path, **{k.replace("/", "__"): v for k, v in rows.items()})
        return path
    flat: dict[str, np.ndarray] = {}
    for key, value in rows.items():
        if value.ndim == 1:
            flat[key] = value
        else:
            flat.update({f"{key}_{i}": value[:, i] for i in range(value.shape[1])})
    if path.suffix == ".csv":
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(list(flat))
            writer.writerows(zip(*(v.tolist() for v in flat.values())))
        return path
    if path.suffix == ".parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise DataError("writing .parquet needs pyarrow (pip install pyarrow); or use .npz / .csv") from None
        pq.write_table(pa.table(flat), path)
        return path
    raise DataError(f"--out {path}: the format is chosen by the suffix: .npz, .csv or .parquet")
