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
import re
import shutil
from pathlib import Path
from typing import Any

from probssl.evaluation.options import RUNTIME_KEYS
from probssl.report.plots import (
    plot_accuracy_vs_bits,
    plot_content_style,
    plot_corruption_curves,
    plot_embedding_maps,
    plot_loss_curves,
    plot_ood_histograms,
    plot_selective_curves,
    plot_spectra,
)

__all__ = ["aggregate", "flat_metrics", "group_key", "group_runs", "load_eval", "write_report"]


# ----------------------------------------------------------------------------- loading and grouping


def load_eval(run_dir: str | Path) -> dict[str, Any]:
    eval_file = Path(run_dir) / "eval.json"
    if not eval_file.exists():
        raise FileNotFoundError(f"{eval_file} is missing: run `probssl eval {run_dir}` first.")
    return json.loads(eval_file.read_text())


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
    """Every headline number of one eval.json: its ``summary`` plus every uncertainty score's metrics
    (``score/NAME/...``). Non-numeric and missing values are left out."""
    out = {k: _number(v) for k, v in (m.get("summary") or {}).items()}
    u = m.get("uncertainty") or {}
    for name, s in (u.get("scores") or {}).items():
        p = f"score/{name}/"
        out[p + "mean"] = _number(s.get("mean_test"))
        mis = s.get("misclassification", {})
        out[p + "misclassification_auroc"] = _number(mis.get("auroc"))
        sel = s.get("selective", {})
        out[p + "aurc"], out[p + "eaurc"] = _number(sel.get("aurc")), _number(sel.get("eaurc"))
        for ood, r in (s.get("ood") or {}).items():
            for key in ("auroc", "aupr", "fpr95"):
                out[f"{p}ood_{key}/{ood}"] = _number(r.get(key))
        for corruption, r in (s.get("corruption") or {}).items():
            out[f"{p}corruption_spearman/{corruption}"] = _number(r.get("spearman"))
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


# ----------------------------------------------------------------------------- formatting


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 10):
        return f"{int(value)}"
    if isinstance(value, float):  # 4 decimals below 1 (accuracies, AUROCs), 2 up to 100, then 1
        return f"{value:.4f}" if abs(value) < 1 else f"{value:.2f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def _cell(agg: dict | None) -> str:
    if not agg:
        return "–"
    if agg["n"] == 1 or agg["se"] is None:
        return _fmt(agg["mean"])
    return f"{_fmt(agg['mean'])} ± {_fmt(agg['se'])}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
    ]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "run"


def _keys_with(groups_metrics: dict[str, dict], prefix: str) -> list[str]:
    return sorted({k[len(prefix) :] for g in groups_metrics.values() for k in g if k.startswith(prefix)})


# ----------------------------------------------------------------------------- the report


def write_report(
    run_dirs: list[str | Path],
    out_dir: str | Path,
    baselines: dict[str, dict] | None = None,
    title: str = "probssl report",
    preamble: str = "",
) -> dict[str, Any]:
    """Write OUT/report.md, OUT/metrics.json and PNG plots comparing the evaluated runs."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    groups = group_runs(run_dirs)
    agg: dict[str, dict[str, dict]] = {}
    for label, runs in groups.items():
        per_run = [flat_metrics(m) for _, m in runs]
        keys = sorted({k for f in per_run for k in f})
        agg[label] = {k: aggregate([f[k] for f in per_run if k in f]) for k in keys}
    first = {label: runs[0][1] for label, runs in groups.items()}  # representative run of each group
    first_dir = {label: runs[0][0] for label, runs in groups.items()}

    lines = [f"# {title}", ""]
    if preamble:
        lines += [preamble, ""]
    plots: dict[str, str] = {}

    # ---- runs and grouping
    lines += [
        "## Runs",
        "",
        "Runs are grouped by their config with `train.seed` (and settings that do not change training: "
        + ", ".join(f"`{k}`" for k in RUNTIME_KEYS if k != "train.seed")
        + ") removed; a group of several runs shows mean ± standard error (sample standard deviation, "
        "ddof = 1, divided by √n) "
        "over them. Every number is on the test split; hyper-parameters were selected on the validation "
        "split.",
        "",
    ]
    rows = []
    for label, runs in groups.items():
        m = runs[0][1]
        seeds = [r[1].get("run", {}).get("seed", r[1].get("seed")) for r in runs]
        splits = m.get("splits", {})
        rep = m.get("representation", {})
        rep_text = f"{rep.get('kind')} ({rep.get('dim')}-d)" if isinstance(rep, dict) else str(rep)
        rows.append(
            [
                label,
                str(m.get("run", {}).get("method", m.get("method", "–"))),
                str(splits.get("dataset", m.get("dataset", "–"))),
                rep_text,
                str(len(runs)),
                ", ".join(map(str, seeds)),
                f"{splits.get('train', '–')}/{splits.get('val', '–')}/{splits.get('test', '–')}",
                ", ".join(f"`{r[0]}`" for r in runs),
            ]
        )
    lines += _table(["group", "method", "dataset", "representation", "n", "seeds", "train/val/test", "run dirs"], rows)

    # ---- probes
    probe_cols = [
        ("linear_acc", "linear"),
        ("mlp_acc", "MLP"),
        ("knn_acc", "kNN"),
        ("gmm_acc", "GMM (Hungarian)"),
        ("nmi", "NMI"),
        ("ari", "ARI"),
    ]
    lines += ["## 1. Probes (test accuracy)", ""]
    rows = [[label] + [_cell(agg[label].get(k)) for k, _ in probe_cols] for label in groups]
    for name, b in (baselines or {}).items():
        rows.append([f"*baseline: {name}*", _fmt(b.get("linear_acc")), "–", _fmt(b.get("knn_acc"))] + ["–"] * 3)
    lines += _table(["group"] + [c for _, c in probe_cols], rows)
    sel = []
    for label, m in first.items():
        p = m.get("probes", {})
        parts = []
        if "linear" in p:
            parts.append(f"weight decay {p['linear']['selected'].get('weight_decay')}")
        if "knn" in p:
            parts.append(f"k = {p['knn']['selected'].get('k')}")
        if "mlp" in p:
            parts.append(
                f"MLP weight decay {p['mlp']['selected'].get('weight_decay')}, epoch "
                f"{p['mlp']['selected'].get('epoch')}"
            )
        if parts:
            sel.append(f"{label}: " + ", ".join(parts))
    if sel:
        lines += ["Selected on validation (first run of each group): " + "; ".join(sel) + ".", ""]
    if baselines:
        lines += [
            "Baselines: a linear probe and kNN on raw pixels, and on the same backbone at random initialisation.",
            "",
        ]

    # ---- geometry
    geo_cols = [
        ("effective_rank", "eff. rank (repr.)"),
        ("embedding_effective_rank", "eff. rank (embedding)"),
        ("alignment", "alignment ↓"),
        ("uniformity", "uniformity ↓"),
    ]
    lines += ["## 2. Geometry", ""]
    lines += _table(
        ["group"] + [c for _, c in geo_cols],
        [[label] + [_cell(agg[label].get(k)) for k, _ in geo_cols] for label in groups],
    )
    lines += [
        "Effective rank = exp(entropy of the normalised covariance eigenvalues) (Roy & Vetterli 2007). "
        "Alignment = mean squared distance between the normalised embeddings of two augmented views of a "
        "test image; uniformity = log mean exp(−2 × squared distance) over pairs of test images "
        "(Wang & Isola 2020; both lower = better, uniformity of the uniform distribution on S^(d−1) → −4).",
        "",
    ]
    spectra = {
        label: {
            s: m["geometry"][s]["spectrum"]
            for s in ("representation", "embedding")
            if s in m.get("geometry", {}) and "spectrum" in m["geometry"][s]
        }
        for label, m in first.items()
        if m.get("geometry")
    }
    spectra = {k: v for k, v in spectra.items() if v}
    if spectra:
        plots["spectrum"] = plot_spectra(spectra, out / "spectrum.png").name
        lines += [
            "![Singular-value spectra](spectrum.png)",
            "",
            "Singular values of the centred test features, divided by the largest. A cliff means "
            "dimensional collapse: few directions carry the variance.",
            "",
        ]

    # ---- information
    info_cols = [
        ("mi_lb_bits", "I(Z;Y) lower bound (bits)"),
        ("mi_knn_bits", "I(Z;Y) kNN (bits)"),
        ("label_entropy_bits", "H(Y) (bits)"),
    ]
    if any("mi_lb_bits" in a for a in agg.values()):
        lines += ["## 3. Information", ""]
        lines += _table(
            ["group"] + [c for _, c in info_cols],
            [[label] + [_cell(agg[label].get(k)) for k, _ in info_cols] for label in groups],
        )
        method_text = next(
            (m["information"]["classifier_lower_bound"]["method"] for m in first.values() if m.get("information")), ""
        )
        knn_text = next((m["information"]["knn_ross"]["method"] for m in first.values() if m.get("information")), "")
        lines += [f"Lower bound: {method_text}. kNN: {knn_text}. Both are bounded by H(Y).", ""]

    # ---- uncertainty
    if any(m.get("uncertainty") for m in first.values()):
        lines += ["## 4. Uncertainty", ""]
        ood_sets = _keys_with(agg, "ood_auroc/")
        corruptions = _keys_with(agg, "corruption_spearman/")
        ood_desc = {}
        for m in first.values():
            for name, d in ((m.get("uncertainty") or {}).get("ood_sets") or {}).items():
                ood_desc.setdefault(name, d.get("description", ""))
        header = ["group", "score", "mean", "misclf. AUROC ↑", "AURC ↓", "E-AURC ↓"]
        header += [f"OOD AUROC ↑ ({o})" for o in ood_sets] + [f"FPR@95 ↓ ({o})" for o in ood_sets]
        header += [f"ρ severity ↑ ({c.replace('_', ' ')})" for c in corruptions]
        rows = []
        for label in groups:
            scores = sorted(
                {k.split("/")[1] for k in agg[label] if k.startswith("score/")},
                key=lambda s: (
                    ["posterior", "mc_dispersion", "knn_distance"].index(s)
                    if s in ("posterior", "mc_dispersion", "knn_distance")
                    else 9
                ),
            )
            for s in scores:
                p = f"score/{s}/"
                a = agg[label]
                rows.append(
                    [
                        label,
                        s,
                        _cell(a.get(p + "mean")),
                        _cell(a.get(p + "misclassification_auroc")),
                        _cell(a.get(p + "aurc")),
                        _cell(a.get(p + "eaurc")),
                    ]
                    + [_cell(a.get(f"{p}ood_auroc/{o}")) for o in ood_sets]
                    + [_cell(a.get(f"{p}ood_fpr95/{o}")) for o in ood_sets]
                    + [_cell(a.get(f"{p}corruption_spearman/{c}")) for c in corruptions]
                )
        lines += _table(header, rows)
        lines += [
            "Scores (higher = more uncertain): **posterior** = the method's own `posterior(x).uncertainty()`; "
            "**mc_dispersion** = 1 − ‖mean of unit-normalised posterior samples‖; **knn_distance** = mean "
            "cosine distance to the 10 nearest training representations (every method has it). "
            "Misclassification AUROC and AURC use the errors of the selected linear probe. "
            "ρ severity = Spearman correlation of the score with corruption severity 0–5.",
            "",
        ]
        if ood_desc:
            lines += ["OOD sets: " + "; ".join(f"**{k}** — {v}" for k, v in ood_desc.items()) + ".", ""]

        ood_data, selective_data, corruption_data, score_names = {}, {}, {}, {}
        for label, m in first.items():
            u = m.get("uncertainty")
            if not u:
                continue
            primary = u["primary"]
            samples = u.get("samples", {})
            if samples.get("test", {}).get(primary) and samples.get("ood"):
                ood_data[label] = {
                    "score": primary,
                    "test": samples["test"][primary],
                    "ood": {o: v[primary] for o, v in samples["ood"].items() if primary in v},
                    "auroc": {o: r["auroc"] for o, r in u["scores"][primary].get("ood", {}).items()},
                }
            selective_data[label] = {s: d["selective"] for s, d in u["scores"].items() if "selective" in d}
            if u["scores"][primary].get("corruption"):
                corruption_data[label] = {
                    c: r["mean_uncertainty"] for c, r in u["scores"][primary]["corruption"].items()
                }
                score_names[label] = primary
        if ood_data:
            plots["uncertainty_ood"] = plot_ood_histograms(ood_data, out / "uncertainty_ood.png").name
            lines += [
                "![Uncertainty in- vs out-of-distribution](uncertainty_ood.png)",
                "",
                "Each run's main score (posterior for probabilistic methods, kNN distance otherwise) on the "
                "test split and on each OOD set.",
                "",
            ]
        if selective_data:
            plots["selective"] = plot_selective_curves(selective_data, out / "selective.png").name
            lines += [
                "![Selective accuracy](selective.png)",
                "",
                "Accuracy of the linear probe on the most certain fraction of the test images; a useful score "
                "rises to the left.",
                "",
            ]
        if corruption_data:
            plots["corruption"] = plot_corruption_curves(corruption_data, out / "corruption.png", score_names).name
            lines += [
                "![Uncertainty vs corruption](corruption.png)",
                "",
                "Mean uncertainty (relative to clean images) as Gaussian noise, blur and occlusion grow.",
                "",
            ]

    # ---- 2-D map
    maps = {label: m["embedding_map"] for label, m in first.items() if m.get("embedding_map")}
    if maps:
        class_names = next(iter(first.values())).get("splits", {}).get("classes")
        plots["embedding_map"] = plot_embedding_maps(maps, out / "embedding_map.png", class_names).name
        lines += [
            "## 5. Embedding map",
            "",
            "![t-SNE map](embedding_map.png)",
            "",
            next(iter(maps.values())).get("method", "t-SNE") + " (at most 2,000 test points per run).",
            "",
        ]

    # ---- image grids (written at eval time)
    image_lines = []
    for label, m in first.items():
        for name, rel in (m.get("images") or {}).items():
            src = first_dir[label] / rel
            if not src.exists():
                continue
            (out / "images").mkdir(exist_ok=True)
            dst = out / "images" / f"{_slug(label)}-{name}.png"
            shutil.copyfile(src, dst)
            plots[f"{label}/{name}"] = f"images/{dst.name}"
            caption = {
                "certainty": "most and least certain test images",
                "reconstructions": "reconstructions",
                "samples": "samples",
            }.get(name, name)
            image_lines += [f"**{label}: {caption}**", "", f"![{label} {caption}](images/{dst.name})", ""]
    if image_lines:
        lines += ["## 6. Images", ""] + image_lines

    # ---- compression
    if any("representation_bits" in a for a in agg.values()):
        comp_cols = [
            ("representation_bits", "bits / representation"),
            ("compression_ratio", "input bits / repr. bits"),
            ("linear_acc", "linear acc at that size"),
        ]
        lines += ["## 7. Compression", ""]
        lines += _table(
            ["group"] + [c for _, c in comp_cols],
            [[label] + [_cell(agg[label].get(k)) for k, _ in comp_cols] for label in groups],
        )
        rules = {m["compression"]["bits_rule"] for m in first.values() if m.get("compression")}
        in_rules = {m["compression"]["input_bits_rule"] for m in first.values() if m.get("compression")}
        lines += [f"Representation bits: {'; '.join(sorted(rules))}. Input bits: {'; '.join(sorted(in_rules))}.", ""]
        bits_data = {}
        for label, m in first.items():
            c = m.get("compression")
            if c:
                bits_data[label] = {
                    "bits": c["representation_bits"],
                    "acc": agg[label]["linear_acc"]["mean"] if "linear_acc" in agg[label] else c["linear_acc"],
                    "curve": c.get("curve"),
                    "input_bits": c["input_bits"],
                }
        plots["accuracy_vs_bits"] = plot_accuracy_vs_bits(bits_data, out / "accuracy_vs_bits.png").name
        lines += [
            "![Accuracy vs bits](accuracy_vs_bits.png)",
            "",
            "Stars: each run's representation; lines: linear probes on prefixes of compressed codes "
            "(e.g. SCL-Bernoulli bits).",
            "",
        ]

    # ---- content vs style
    tasks = (["content_acc"] if any("content_acc" in a for a in agg.values()) else []) + [
        f"style_acc/{t}" for t in _keys_with(agg, "style_acc/")
    ]
    if tasks:
        lines += ["## 8. Content vs style", ""]
        header = ["group"] + ["content (class)" if t == "content_acc" else t.split("/")[1] for t in tasks]
        rows = [[label] + [_cell(agg[label].get(t)) for t in tasks] for label in groups]
        chance = {}
        for m in first.values():
            for task, r in (m.get("content_style") or {}).items():
                chance.setdefault(task, r.get("chance"))
        rows.append(
            ["*chance*"] + [_fmt(chance.get("content" if t == "content_acc" else t.split("/")[1])) for t in tasks]
        )
        lines += _table(header, rows)
        desc = {}
        for m in first.values():
            desc.update(m.get("style_tasks") or {})
        lines += [
            "Linear-probe accuracy for the class (content) and for the bin of a style transformation applied "
            "to the test images (higher = the representation keeps more of that factor). Style tasks: "
            + "; ".join(f"**{k}** — {v}" for k, v in desc.items())
            + ".",
            "",
        ]
        cs_data = {}
        for label, m in first.items():
            cs = m.get("content_style")
            if cs:
                cs_data[label] = {
                    t: (
                        agg[label].get("content_acc" if t == "content" else f"style_acc/{t}", {"mean": r["acc"]})[
                            "mean"
                        ],
                        r["chance"],
                    )
                    for t, r in cs.items()
                }
        if cs_data:
            plots["content_style"] = plot_content_style(cs_data, out / "content_style.png").name
            lines += ["![Content vs style](content_style.png)", ""]

    # ---- training loss
    curves = {}
    for label, run_dir in first_dir.items():
        log = run_dir / "metrics.jsonl"
        if log.exists():
            records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
            records = [r for r in records if "loss" in r and isinstance(r["loss"], (int, float))]
            if records:
                curves[label] = ([r["step"] for r in records], [float(r["loss"]) for r in records])
    if curves:
        plots["loss"] = plot_loss_curves(curves, out / "loss.png").name
        lines += ["## 9. Training", "", "![Training loss](loss.png)", ""]

    # ---- protocol
    m0 = next(iter(first.values()))
    lines += ["## Protocol", ""]
    if m0.get("protocol"):
        lines += [f"{m0['protocol']}.", ""]
    if m0.get("selection"):
        lines += ["Selection rules:", ""] + [f"- **{k}**: {v}" for k, v in m0["selection"].items()] + [""]
    if m0.get("fine_tuning"):
        lines += [f"Fine-tuning: {m0['fine_tuning']}.", ""]
    (out / "report.md").write_text("\n".join(lines))

    payload = {
        "title": title,
        "grouping": {
            "rule": "config without train.seed and runtime-only keys, plus the evaluated representation",
            "ignored_keys": list(RUNTIME_KEYS),
            "error": "standard error = std(ddof=1) / sqrt(n)",
        },
        "groups": {
            label: {
                "runs": [str(r[0]) for r in runs],
                "seeds": [r[1].get("run", {}).get("seed", r[1].get("seed")) for r in runs],
                "n": len(runs),
                "metrics": agg[label],
            }
            for label, runs in groups.items()
        },
        "runs": {
            str(run_dir): {"group": label, "summary": m.get("summary", {})}
            for label, runs in groups.items()
            for run_dir, m in runs
        },
        "baselines": baselines or {},
        "plots": plots,
    }
    (out / "metrics.json").write_text(json.dumps(payload, indent=1, default=str))
    return payload
