"""Markdown + JSON reports built from run directories (their eval.json and metrics.jsonl)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from probssl.report.plots import plot_loss_curves, plot_spectra, plot_uncertainty_histogram
from probssl.train import MetricsLog

TABLE_COLUMNS = [("linear_acc", "linear probe acc"), ("knn_acc", "kNN acc"),
                 ("effective_rank", "eff. rank (features)"), ("embedding_effective_rank", "eff. rank (embedding)"),
                 ("mean_uncertainty", "mean uncertainty")]


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """Drop per-sample lists from what goes into the report JSON."""
    return {k: v for k, v in metrics.items() if not k.endswith("_test")}


def write_report(run_dirs: list[str | Path], out_dir: str | Path, baselines: dict[str, dict] | None = None,
                 title: str = "probssl report", preamble: str = "") -> dict[str, Any]:
    """Write OUT/report.md, OUT/metrics.json and PNG plots comparing the evaluated runs."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, dict] = {}
    curves: dict[str, tuple[list[int], list[float]]] = {}
    for run_dir in map(Path, run_dirs):
        eval_file = run_dir / "eval.json"
        if not eval_file.exists():
            raise FileNotFoundError(f"{eval_file} is missing: run `probssl eval {run_dir}` first.")
        metrics = json.loads(eval_file.read_text())
        name = metrics.get("method", run_dir.name)
        if name in runs:
            name = f"{name} ({run_dir.name})"
        runs[name] = metrics
        records = [r for r in MetricsLog(run_dir / "metrics.jsonl").read() if "loss" in r]
        curves[name] = ([r["step"] for r in records], [float(r["loss"]) for r in records])

    plots = {"spectrum": plot_spectra({n: m["embedding_spectrum"] for n, m in runs.items()}, out / "spectrum.png",
                                      "Embedding covariance spectrum (test split)"),
             "loss": plot_loss_curves(curves, out / "loss.png")}
    uncertain = {n: m["uncertainty_test"] for n, m in runs.items() if "uncertainty_test" in m}
    if uncertain:
        plots["uncertainty"] = plot_uncertainty_histogram(uncertain, out / "uncertainty.png",
                                                          "Posterior uncertainty on the test split")

    lines = [f"# {title}", ""]
    if preamble:
        lines += [preamble, ""]
    header = "| run | " + " | ".join(label for _, label in TABLE_COLUMNS) + " |"
    lines += ["## Results (test split)", "", header, "|" + "---|" * (len(TABLE_COLUMNS) + 1)]
    for name, m in runs.items():
        lines.append(f"| {name} | " + " | ".join(_fmt(m.get(key)) for key, _ in TABLE_COLUMNS) + " |")
    for name, m in (baselines or {}).items():
        lines.append(f"| *baseline: {name}* | " + " | ".join(_fmt(m.get(key)) for key, _ in TABLE_COLUMNS) + " |")
    first = next(iter(runs.values()))
    lines += ["", f"Splits: {first['splits']}. Protocol: {first['protocol']}.", "",
              "Selected on validation: " + "; ".join(
                  f"{n}: weight decay {m['linear_weight_decay']}, k = {m['knn_k']}" for n, m in runs.items()), ""]
    lines += ["## Plots", "", "![Embedding spectrum](spectrum.png)", "",
              "Eigenvalues of the covariance of the unit-sphere embeddings, normalised to sum to one. "
              "A fast drop means dimensional collapse: few directions carry the variance.", "",
              "![Training loss](loss.png)", ""]
    if uncertain:
        lines += ["![Uncertainty](uncertainty.png)", "",
                  "Per-image posterior uncertainty of the probabilistic methods on the test split.", ""]
    (out / "report.md").write_text("\n".join(lines))
    payload = {"methods": {n: _summary(m) for n, m in runs.items()}, "baselines": baselines or {},
               "plots": {k: str(Path(v).name) for k, v in plots.items()}}
    (out / "metrics.json").write_text(json.dumps(payload, indent=1))
    return payload
