"""``probssl demo``: SimCLR vs VSimCLR on scikit-learn's digits, trained, evaluated and reported.

The report has every section of ``probssl eval`` (probes, geometry, information, uncertainty with the
synthetic OOD sets ``noise`` and ``shuffled``, compression, content vs style, t-SNE map, image grids).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from probssl.config import load_config
from probssl.data import load_splits
from probssl.evaluation import evaluate_baselines, evaluate_run
from probssl.report import write_report
from probssl.train import Trainer, TrainingError

DEMO_PRESETS = ("simclr-digits", "vsimclr-digits")
DEMO_OOD = ("noise", "shuffled")  # synthetic: digits has no natural OOD dataset on disk


DEMO_MARKER = ".probssl-demo"  # written into the folders the demo creates: only those are ever replaced


def _clear_previous_demo(run_dir: Path) -> None:
    """The demo starts from scratch, but only ever deletes a folder it wrote itself."""
    if not run_dir.exists():
        return
    if not (run_dir / DEMO_MARKER).exists():
        if any(run_dir.iterdir()):
            raise TrainingError(
                f"{run_dir} holds files the demo did not write (your own run?); it is left untouched. "
                "Give the demo another folder: probssl demo --out runs/demo-2"
            )
        return
    shutil.rmtree(run_dir)


def run_demo(out: Path, epochs: int | None = None, data_dir: str | None = None) -> dict:
    """Train both presets with the same backbone and budget, evaluate, write OUT/report.md."""
    tic = time.perf_counter()
    run_dirs, methods = [], {}
    for preset in DEMO_PRESETS:
        overrides = [f"train.epochs={epochs}"] if epochs else []
        if data_dir:
            overrides.append(f"data.data_dir={data_dir}")
        config = load_config(preset, overrides=overrides)
        run_dir = out / preset
        _clear_previous_demo(run_dir)
        print(f"[demo] training {preset}: {config.train.epochs} epochs, batch {config.train.batch_size}", flush=True)
        trainer = Trainer(config, run_dir)
        (run_dir / DEMO_MARKER).write_text("written by probssl demo; the next demo run replaces this folder\n")
        trainer.fit()
        print(f"[demo] evaluating {preset}", flush=True)
        metrics = evaluate_run(run_dir, ood=DEMO_OOD)
        s = metrics["summary"]
        print(
            f"[demo] {preset}: linear {s['linear_acc']:.4f}  kNN {s['knn_acc']:.4f}  "
            f"effective rank {s['effective_rank']:.1f}  OOD AUROC (noise, {s['uncertainty_score']}) "
            f"{s['ood_auroc/noise']:.3f}  ({metrics['eval_seconds']:.0f} s)",
            flush=True,
        )
        run_dirs.append(run_dir)
        methods[config.method.name] = {"run_dir": str(run_dir), **s}

    print("[demo] evaluating baselines (raw pixels, random encoder)", flush=True)
    config = load_config(DEMO_PRESETS[0], overrides=overrides)
    baselines = evaluate_baselines(config, load_splits(config.data), config.eval)
    elapsed = time.perf_counter() - tic
    preamble = (
        f"SimCLR and VSimCLR trained with the same backbone ({config.model.backbone}), augmentations, "
        f"optimiser and budget ({config.train.epochs} epochs) on scikit-learn's 8x8 digits. "
        f"Reproduce with `probssl demo` (this run took {elapsed:.0f} s). The baselines are a linear "
        "probe on raw pixels and on the same backbone at random initialisation. Out-of-distribution sets "
        f"are synthetic ({', '.join(DEMO_OOD)}; see docs/evaluation.md)."
    )
    payload = write_report(
        run_dirs, out, baselines=baselines, title="probssl demo: SimCLR vs VSimCLR on digits", preamble=preamble
    )
    # The headline numbers per method first (linear_acc, knn_acc, effective_rank, mean_uncertainty, ...).
    payload = {"methods": methods, **payload, "total_seconds": round(time.perf_counter() - tic, 1)}
    (out / "metrics.json").write_text(json.dumps(payload, indent=1))
    print(f"[demo] wrote {out / 'report.md'} and {out / 'metrics.json'} in {payload['total_seconds']:.0f} s")
    return payload
