"""Markdown + JSON reports built from run directories (their eval.json, eval_images/ and metrics.jsonl).

Runs are grouped by their config with the seed (and settings that do not change what is trained, see
``probssl.evaluation.options.RUNTIME_KEYS``) removed, plus the evaluated representation. A group with
several runs is reported as mean ± standard error over its runs (s.e. = sample standard deviation with
ddof = 1 / sqrt(n)); a group of one run shows the value alone. OUT/metrics.json holds the same numbers
(every metric of every group as {mean, se, n, values}) and each run's summary.

Plots that show per-sample data (histograms, selective curves, 2-D maps, image grids) use the first run
of each group (lowest seed).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from probssl.data import DataError
from probssl.evaluation import list_sections
from probssl.evaluation.options import RUNTIME_KEYS
from probssl.report.format import table
from probssl.report.html import write_html
from probssl.report.plots import plot_loss_curves, plot_monitor_curves
from probssl.report.sections import ReportContext, renderer_for
from probssl.train.logging import MetricsLog, read_status, stale_evaluation

__all__ = ["aggregate", "flat_metrics", "group_key", "group_runs", "load_eval", "write_report"]


# ----------------------------------------------------------------------------- loading and grouping


def load_eval(run_dir: str | Path) -> dict[str, Any]:
    eval_file = Path(run_dir) / "eval.json"
    if not eval_file.exists():
        raise FileNotFoundError(f"{eval_file} is missing: run `probssl eval {run_dir}` first.")
    try:
        m = json.loads(eval_file.read_text())
    except (ValueError, UnicodeDecodeError):
        m = None
    if not isinstance(m, dict) or not isinstance(m.get("summary"), dict) or not m["summary"]:
        raise DataError(f"{eval_file} is empty, torn or not an evaluation: run `probssl eval {run_dir}` again.")
    return m


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _representation_kind(m: dict) -> str | None:
    rep = m.get("representation")
    return rep.get("kind") if isinstance(rep, dict) else rep


def group_key(m: dict[str, Any], fallback: str) -> str:
    """Config without the seed and runtime-only keys (and without the eval section), plus the evaluated
    representation, as canonical JSON. Runs without a stored config form a group of their own."""
    config = m.get("config")
    if not isinstance(config, dict):
        return json.dumps({"run": fallback})
    flat = {k: v for k, v in _flatten(config).items() if k not in RUNTIME_KEYS and not k.startswith("eval.")}
    flat["evaluated_representation"] = _representation_kind(m)
    return json.dumps(flat, sort_keys=True, default=str)


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def flat_metrics(m: dict[str, Any]) -> dict[str, float]:
    """Every headline number of one eval.json: its ``summary`` plus what each registered section adds
    (``Section.flat``, e.g. every uncertainty score's metrics as ``score/NAME/...``). Non-numeric and missing
    values are left out."""
    out = {k: _number(v) for k, v in (m.get("summary") or {}).items()}
    for section in list_sections():
        if isinstance(m.get(section.name), dict):
            out.update({k: _number(v) for k, v in section.flat(m[section.name]).items()})
    return {k: v for k, v in out.items() if v is not None}


def aggregate(values: list[float]) -> dict[str, Any]:
    """{mean, se, n, values}; se = std(ddof=1) / sqrt(n), None for n < 2."""
    n = len(values)
    mean = sum(values) / n
    se = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n) if n > 1 else None
    return {"mean": mean, "se": se, "n": n, "values": values}


def _group_labels(groups: dict[str, list[tuple[Path, dict]]]) -> dict[str, str]:
    """Readable, unique labels: the method name, plus the config keys that tell same-method groups apart."""

    def base(m, run_dir):
        method = m.get("run", {}).get("method") or m.get("method") or run_dir.name
        kind = _representation_kind(m)
        return method, kind

    by_method: dict[str, list[str]] = {}
    for key, runs in groups.items():
        by_method.setdefault(base(runs[0][1], runs[0][0])[0], []).append(key)
    labels = {}
    for method, keys in by_method.items():
        if len(keys) == 1:
            labels[keys[0]] = method
            continue
        flats = {k: json.loads(k) for k in keys}
        differing = sorted(
            {f for k in keys for f in flats[k] if len({json.dumps(flats[j].get(f), default=str) for j in keys}) > 1}
        )
        for k in keys:
            parts = [f"{f.split('.')[-1]}={flats[k].get(f)}" for f in differing[:3]]
            labels[k] = f"{method} ({', '.join(parts)})" if parts else f"{method} ({groups[k][0][0].name})"
    # guarantee uniqueness
    seen: dict[str, int] = {}
    for k, label in labels.items():
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            labels[k] = f"{label} #{seen[label]}"
    return labels


def group_runs(run_dirs: list[str | Path]) -> dict[str, list[tuple[Path, dict]]]:
    """{label: [(run_dir, eval.json dict), ...]} in the order the groups first appear; runs sorted by seed."""
    groups: dict[str, list[tuple[Path, dict]]] = {}
    for run_dir in map(Path, run_dirs):
        m = load_eval(run_dir)
        groups.setdefault(group_key(m, str(run_dir)), []).append((run_dir, m))
    for runs in groups.values():
        runs.sort(key=lambda r: (r[1].get("run", {}).get("seed", r[1].get("seed", 0)) or 0, str(r[0])))
    labels = _group_labels(groups)
    return {labels[k]: v for k, v in groups.items()}


# ----------------------------------------------------------------------------- the report


def _aggregate_groups(groups: dict[str, list[tuple[Path, dict]]]) -> dict[str, dict[str, dict]]:
    agg: dict[str, dict[str, dict]] = {}
    for label, runs in groups.items():
        per_run = [flat_metrics(m) for _, m in runs]
        keys = sorted({k for f in per_run for k in f})
        agg[label] = {k: aggregate([f[k] for f in per_run if k in f]) for k in keys}
    return agg


def _stale(run_dir: Path, m: dict) -> str:
    """' (stale: ...)' when the run has a checkpoint newer than the step its eval.json evaluated (the rule of
    ``probssl runs``: :func:`~probssl.train.logging.stale_evaluation`)."""
    stale = stale_evaluation(run_dir, m)
    return f" (**stale**: evaluated at step {stale[0]}, trained to {stale[1]})" if stale else ""


def _precision(run_dir: Path) -> str:
    """The precision the run trained in and why (status.json; runs of probssl 0.1 did not record it)."""
    status = read_status(run_dir)
    return f"{status['precision']} ({status.get('precision_reason', '')})" if "precision" in status else "not recorded"


def _runs_table(r: ReportContext) -> list[str]:
    lines = [
        "## Runs",
        "",
        "Runs are grouped by their config with `train.seed` (and settings that do not change training: "
        + ", ".join(f"`{k}`" for k in RUNTIME_KEYS if k != "train.seed")
        + ") removed; a group of several runs shows mean ± standard error (sample standard deviation, "
        "ddof = 1, divided by √n) over them. Every number is on the test split; hyper-parameters were "
        "selected on the validation split.",
        "",
    ]
    rows = []
    for label, runs in r.groups.items():
        m = runs[0][1]
        seeds = [x[1].get("run", {}).get("seed", x[1].get("seed")) for x in runs]
        splits, rep = m.get("splits", {}), m.get("representation", {})
        rep_text = f"{rep.get('kind')} ({rep.get('dim')}-d)" if isinstance(rep, dict) else str(rep)
        method = str(m.get("run", {}).get("method", m.get("method", "–")))
        sizes = f"{splits.get('train', '–')}/{splits.get('val', '–')}/{splits.get('test', '–')}"
        dirs = ", ".join(f"`{x[0]}`" + _stale(x[0], x[1]) for x in runs)
        rows.append(
            [
                label,
                method,
                str(splits.get("dataset", m.get("dataset", "–"))),
                rep_text,
                str(len(runs)),
                ", ".join(map(str, seeds)),
                sizes,
                _precision(runs[0][0]),
                dirs,
            ]
        )
    header = ["group", "method", "dataset", "representation", "n", "seeds", "train/val/test", "precision", "run dirs"]
    return lines + table(header, rows)


MONITOR_KEYS = (
    "monitor/knn_acc",
    "monitor/linear_acc",
    "monitor/effective_rank",
    "monitor/alignment",
    "monitor/uniformity",
    "monitor/ood_auroc_noise",
    "monitor/sigma/mean",  # the posterior's parameters and KL term (probabilistic methods; absent keys not drawn)
    "monitor/loc_norm/mean",
    "monitor/kappa/mean",
    "monitor/kl/mean",
)


def _training_section(r: ReportContext) -> list[str]:
    """The loss, and the online monitors (probssl.evaluation.monitors) against steps, of each group's first run."""
    curves, monitors = {}, {}
    for label, run_dir in r.first_dir.items():
        records = MetricsLog(run_dir / "metrics.jsonl").read()  # a torn last line is skipped, not fatal
        losses = [x for x in records if isinstance(x.get("loss"), (int, float))]
        if losses:
            curves[label] = ([x["step"] for x in losses], [float(x["loss"]) for x in losses])
        for key in MONITOR_KEYS:
            points = [(x["step"], float(x[key])) for x in records if isinstance(x.get(key), (int, float))]
            if points:
                monitors.setdefault(key, {})[label] = ([p[0] for p in points], [p[1] for p in points])
    lines = [r.plot("loss", plot_loss_curves, curves), ""] if curves else []
    if monitors:
        lines += [
            r.plot("monitors", plot_monitor_curves, monitors),
            "",
            "Online monitors on a fixed validation subset during training (kNN, a ridge probe, RankMe, "
            "alignment / uniformity, the default uncertainty score's AUROC against noise and, for probabilistic "
            "methods, the mean posterior sigma, ||m|| or kappa, and KL term).",
            "",
        ]
    return lines


def _protocol(r: ReportContext) -> list[str]:
    m0 = next(iter(r.first.values()))
    lines = ["## Protocol", ""]
    if m0.get("protocol"):
        lines += [f"{m0['protocol']}.", ""]
    if m0.get("selection"):
        lines += ["Selection rules:", ""] + [f"- **{k}**: {v}" for k, v in m0["selection"].items()] + [""]
    if m0.get("fine_tuning"):
        lines += [f"Fine-tuning: {m0['fine_tuning']}.", ""]
    return lines


def _section_lines(r: ReportContext) -> list[str]:
    """Every evaluation section that some run has, numbered in registry order, then training."""
    lines, number = [], 0
    for section in list_sections():
        if not any(m.get(section.name) for m in r.first.values()):
            continue
        body = renderer_for(section)(r)
        if body:
            number += 1
            lines += [f"## {number}. {section.title}", "", *body]
    training = _training_section(r)
    if training:
        lines += [f"## {number + 1}. Training", "", *training]
    return lines


def write_report(
    run_dirs: list[str | Path],
    out_dir: str | Path,
    baselines: dict[str, dict] | None = None,
    title: str = "probssl report",
    preamble: str = "",
    html: bool = True,
) -> dict[str, Any]:
    """Write OUT/report.md, OUT/metrics.json and PNG plots comparing the evaluated runs, and (``html``)
    OUT/report.html: the same content as one self-contained page (probssl.report.html)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    groups = group_runs(run_dirs)
    r = ReportContext(groups=groups, agg=_aggregate_groups(groups), out=out, baselines=baselines or {})
    head = [f"# {title}", ""] + ([preamble, ""] if preamble else []) + _runs_table(r)
    body = _section_lines(r) + _protocol(r)
    (out / "report.md").write_text("\n".join(head + body))
    if html:  # after the sections: they wrote the plots the page embeds
        write_html(out / "report.html", title, head, body, groups)
    payload = {
        "title": title,
        "grouping": {
            "rule": "config without train.seed and runtime-only keys, plus the evaluated representation",
            "ignored_keys": list(RUNTIME_KEYS),
            "error": "standard error = std(ddof=1) / sqrt(n)",
        },
        "groups": {
            label: {
                "runs": [str(x[0]) for x in runs],
                "seeds": [x[1].get("run", {}).get("seed", x[1].get("seed")) for x in runs],
                "n": len(runs),
                "metrics": r.agg[label],
            }
            for label, runs in groups.items()
        },
        "runs": {
            str(d): {"group": label, "summary": m.get("summary", {})} for label, runs in groups.items() for d, m in runs
        },
        "baselines": baselines or {},
        "plots": r.plots,
    }
    (out / "metrics.json").write_text(json.dumps(payload, indent=1, default=str))
    return payload
