"""Report renderers: one per evaluation section, each turning the grouped runs into Markdown and plots.

A renderer is ``fn(report: ReportContext) -> list[str]`` registered under the evaluation section's name
with :func:`register_renderer`; an evaluation section may instead carry its own ``render(report)``
method, and a section with neither gets a table of its summary numbers. The report shows the
sections in the order of :func:`probssl.evaluation.list_sections`, numbering the headings.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probssl.report import plots
from probssl.report.format import cell, fmt, keys_with, slug, table

__all__ = ["ReportContext", "register_renderer", "renderer_for"]


@dataclass
class ReportContext:
    """What a renderer may use.

    groups: {label: [(run_dir, eval.json dict), ...]}; agg: {label: {flat metric: {mean, se, n, values}}};
    first / first_dir: each group's representative run (lowest seed) and its folder; out: the report folder;
    plots: {name: file relative to out}, to which renderers add what they write.
    """

    groups: dict[str, list[tuple[Path, dict]]]
    agg: dict[str, dict[str, dict]]
    out: Path
    baselines: dict[str, dict] = field(default_factory=dict)
    plots: dict[str, str] = field(default_factory=dict)

    @property
    def first(self) -> dict[str, dict]:
        return {label: runs[0][1] for label, runs in self.groups.items()}

    @property
    def first_dir(self) -> dict[str, Path]:
        return {label: runs[0][0] for label, runs in self.groups.items()}

    def has(self, key: str) -> bool:
        return any(key in a for a in self.agg.values())

    def metric_table(self, columns: list[tuple[str, str]]) -> list[str]:
        """One row per group, one column per (flat metric, header)."""
        rows = [[label] + [cell(self.agg[label].get(k)) for k, _ in columns] for label in self.groups]
        return table(["group"] + [c for _, c in columns], rows)

    def plot(self, name: str, fn: Callable[..., Path], data: Any, *args) -> str:
        """Write plot ``name``.png with ``fn(data, path, *args)``, record it, return its Markdown image line."""
        self.plots[name] = fn(data, self.out / f"{name}.png", *args).name
        return f"![{name.replace('_', ' ')}]({self.plots[name]})"


_RENDERERS: dict[str, Callable[[ReportContext], list[str]]] = {}


def register_renderer(name: str) -> Callable:
    def decorator(fn: Callable[[ReportContext], list[str]]) -> Callable[[ReportContext], list[str]]:
        _RENDERERS[name] = fn
        return fn

    return decorator


def summary_table(section: Any, report: ReportContext) -> list[str]:
    """The fallback renderer: the section's summary numbers, one column each."""
    keys: list[str] = []
    for m in report.first.values():
        if m.get(section.name):
            keys += [k for k in section.summary(m[section.name]) if k not in keys]
    return report.metric_table([(k, k) for k in keys]) if keys else []


def renderer_for(section: Any) -> Callable[[ReportContext], list[str]]:
    if section.name in _RENDERERS:
        return _RENDERERS[section.name]
    if callable(getattr(section, "render", None)):
        return section.render
    return lambda report: summary_table(section, report)


# ----------------------------------------------------------------------------- built-in sections


@register_renderer("probes")
def render_probes(r: ReportContext) -> list[str]:
    cols = [("linear_acc", "linear"), ("mlp_acc", "MLP"), ("knn_acc", "kNN"), ("gmm_acc", "GMM (Hungarian)")]
    cols += [("nmi", "NMI"), ("ari", "ARI")]
    rows = [[label] + [cell(r.agg[label].get(k)) for k, _ in cols] for label in r.groups]
    for name, b in r.baselines.items():
        rows.append([f"*baseline: {name}*", fmt(b.get("linear_acc")), "–", fmt(b.get("knn_acc"))] + ["–"] * 3)
    lines = table(["group"] + [c for _, c in cols], rows)
    selected = []
    for label, m in r.first.items():
        p = m.get("probes", {})
        parts = [f"weight decay {p['linear']['selected'].get('weight_decay')}"] if "linear" in p else []
        if "knn" in p:
            parts.append(f"k = {p['knn']['selected'].get('k')}")
        if "mlp" in p:
            sel = p["mlp"]["selected"]
            parts.append(f"MLP weight decay {sel.get('weight_decay')}, epoch {sel.get('epoch')}")
        if parts:
            selected.append(f"{label}: " + ", ".join(parts))
    if selected:
        lines += ["Selected on validation (first run of each group): " + "; ".join(selected) + ".", ""]
    if r.baselines:
        lines += [
            "Baselines: a linear probe and kNN on raw pixels, and on the same backbone at random initialisation.",
            "",
        ]
    return lines


@register_renderer("geometry")
def render_geometry(r: ReportContext) -> list[str]:
    lines = r.metric_table(
        [
            ("effective_rank", "eff. rank (repr.)"),
            ("embedding_effective_rank", "eff. rank (embedding)"),
            ("alignment", "alignment ↓"),
            ("uniformity", "uniformity ↓"),
        ]
    )
    lines += [
        "Effective rank = exp(entropy of the normalised covariance eigenvalues) (Roy & Vetterli 2007). "
        "Alignment = mean squared distance between the normalised embeddings of two augmented views of a "
        "test image; uniformity = log mean exp(−2 × squared distance) over pairs of test images "
        "(Wang & Isola 2020; both lower = better, uniformity of the uniform distribution on S^(d−1) → −4).",
        "",
    ]
    spectra = {}
    for label, m in r.first.items():
        g = m.get("geometry") or {}
        per = {s: g[s]["spectrum"] for s in ("representation", "embedding") if "spectrum" in g.get(s, {})}
        if per:
            spectra[label] = per
    if spectra:
        lines += [
            r.plot("spectrum", plots.plot_spectra, spectra),
            "",
            "Singular values of the centred test features, divided by the largest. A cliff means "
            "dimensional collapse: few directions carry the variance.",
            "",
        ]
    return lines


@register_renderer("information")
def render_information(r: ReportContext) -> list[str]:
    lines = r.metric_table(
        [
            ("mi_lb_bits", "I(Z;Y) lower bound (bits)"),
            ("mi_knn_bits", "I(Z;Y) kNN (bits)"),
            ("label_entropy_bits", "H(Y) (bits)"),
        ]
    )
    info = next((m["information"] for m in r.first.values() if m.get("information")), None)
    if info:
        lines += [
            f"Lower bound: {info['classifier_lower_bound']['method']}. kNN: {info['knn_ross']['method']}. "
            "Both are bounded by H(Y).",
            "",
        ]
    return lines


def _score_rows(r: ReportContext, ood_sets: list[str], corruptions: list[str]) -> list[list[str]]:
    rows = []
    for label in r.groups:
        u = r.first[label].get("uncertainty") or {}
        names = {k.split("/")[1] for k in r.agg[label] if k.startswith("score/")}
        order = u.get("scores_available") or sorted(names)
        for s in [n for n in order if n in names]:
            p, a = f"score/{s}/", r.agg[label]
            auroc = [a.get(f"{p}ood_auroc/{o}") for o in ood_sets]
            inverted = any(x and x["mean"] < 0.5 for x in auroc)
            row = [label, s + (" (inverted)" if inverted else ""), cell(a.get(p + "mean"))]
            row += [cell(a.get(p + k)) for k in ("misclassification_auroc", "aurc", "eaurc")]
            row += [cell(x) for x in auroc] + [cell(a.get(f"{p}ood_fpr95/{o}")) for o in ood_sets]
            rows.append(row + [cell(a.get(f"{p}corruption_spearman/{c}")) for c in corruptions])
    return rows


@register_renderer("uncertainty")
def render_uncertainty(r: ReportContext) -> list[str]:
    ood_sets, corruptions = keys_with(r.agg, "ood_auroc/"), keys_with(r.agg, "corruption_spearman/")
    header = ["group", "score", "mean", "misclf. AUROC ↑", "AURC ↓", "E-AURC ↓"]
    header += [f"OOD AUROC ↑ ({o})" for o in ood_sets] + [f"FPR@95 ↓ ({o})" for o in ood_sets]
    header += [f"ρ severity ↑ ({c.replace('_', ' ')})" for c in corruptions]
    lines = table(header, _score_rows(r, ood_sets, corruptions))
    descriptions: dict[str, str] = {}
    ood_desc: dict[str, str] = {}
    for m in r.first.values():
        u = m.get("uncertainty") or {}
        for name, s in (u.get("scores") or {}).items():
            descriptions.setdefault(name, s.get("description", ""))
        for name, d in (u.get("ood_sets") or {}).items():
            ood_desc.setdefault(name, d.get("description", ""))
    lines += [
        "Scores (higher = more uncertain; each method's default first): "
        + "; ".join(f"**{k}** = {v}" for k, v in descriptions.items())
        + ". A score marked *inverted* has OOD AUROC < 0.5 on some set: it ranks OOD inputs as MORE certain. "
        "Misclassification AUROC and AURC use the errors of the selected linear probe. "
        "ρ severity = Spearman correlation of the score with corruption severity 0–5.",
        "",
    ]
    if ood_desc:
        lines += ["OOD sets: " + "; ".join(f"**{k}** — {v}" for k, v in ood_desc.items()) + ".", ""]
    return lines + _uncertainty_plots(r)


def _uncertainty_plots(r: ReportContext) -> list[str]:
    ood_data, selective, corruption, score_names = {}, {}, {}, {}
    for label, m in r.first.items():
        u = m.get("uncertainty")
        if not u:
            continue
        primary, samples = u["primary"], u.get("samples", {})
        if samples.get("test", {}).get(primary) and samples.get("ood"):
            ood_data[label] = {
                "score": primary,
                "test": samples["test"][primary],
                "ood": {o: v[primary] for o, v in samples["ood"].items() if primary in v},
                "auroc": {o: x["auroc"] for o, x in u["scores"][primary].get("ood", {}).items()},
            }
        selective[label] = {s: d["selective"] for s, d in u["scores"].items() if "selective" in d}
        if u["scores"][primary].get("corruption"):
            corruption[label] = {c: x["mean_uncertainty"] for c, x in u["scores"][primary]["corruption"].items()}
            score_names[label] = primary
    lines = []
    if ood_data:
        lines += [
            r.plot("uncertainty_ood", plots.plot_ood_histograms, ood_data),
            "",
            "Each run's default score on the test split and on each OOD set.",
            "",
        ]
    if selective:
        lines += [
            r.plot("selective", plots.plot_selective_curves, selective),
            "",
            "Accuracy of the linear probe on the most certain fraction of the test images; a useful score "
            "rises to the left.",
            "",
        ]
    if corruption:
        lines += [
            r.plot("corruption", plots.plot_corruption_curves, corruption, score_names),
            "",
            "Mean uncertainty (relative to clean images) as Gaussian noise, blur and occlusion grow.",
            "",
        ]
    return lines


@register_renderer("compression")
def render_compression(r: ReportContext) -> list[str]:
    lines = r.metric_table(
        [
            ("representation_bits", "bits / representation"),
            ("compression_ratio", "input bits / repr. bits"),
            ("linear_acc", "linear acc at that size"),
        ]
    )
    comp = {label: m["compression"] for label, m in r.first.items() if m.get("compression")}
    rules = sorted({c["bits_rule"] for c in comp.values()})
    in_rules = sorted({c["input_bits_rule"] for c in comp.values()})
    lines += [f"Representation bits: {'; '.join(rules)}. Input bits: {'; '.join(in_rules)}.", ""]
    data = {
        label: {
            "bits": c["representation_bits"],
            "acc": r.agg[label]["linear_acc"]["mean"] if "linear_acc" in r.agg[label] else c["linear_acc"],
            "curve": c.get("curve"),
            "input_bits": c["input_bits"],
        }
        for label, c in comp.items()
    }
    lines += [
        r.plot("accuracy_vs_bits", plots.plot_accuracy_vs_bits, data),
        "",
        "Stars: each run's representation; lines: linear probes on prefixes of compressed codes "
        "(e.g. SCL-Bernoulli bits).",
        "",
    ]
    return lines


@register_renderer("content_style")
def render_content_style(r: ReportContext) -> list[str]:
    tasks = (["content_acc"] if r.has("content_acc") else []) + [
        f"style_acc/{t}" for t in keys_with(r.agg, "style_acc/")
    ]
    name = lambda t: "content" if t == "content_acc" else t.split("/")[1]  # noqa: E731
    chance, desc = {}, {}
    for m in r.first.values():
        for task, x in (m.get("content_style") or {}).items():
            chance.setdefault(task, x.get("chance"))
        desc.update(m.get("style_tasks") or {})
    rows = [[label] + [cell(r.agg[label].get(t)) for t in tasks] for label in r.groups]
    rows.append(["*chance*"] + [fmt(chance.get(name(t))) for t in tasks])
    header = ["group"] + ["content (class)" if t == "content_acc" else name(t) for t in tasks]
    lines = table(header, rows) + [
        "Linear-probe accuracy for the class (content) and for the bin of a style transformation applied "
        "to the test images (higher = the representation keeps more of that factor). Style tasks: "
        + "; ".join(f"**{k}** — {v}" for k, v in desc.items())
        + ".",
        "",
    ]
    data = {}
    for label, m in r.first.items():
        if m.get("content_style"):
            data[label] = {
                t: (
                    (r.agg[label].get("content_acc" if t == "content" else f"style_acc/{t}") or {"mean": x["acc"]})[
                        "mean"
                    ],
                    x["chance"],
                )
                for t, x in m["content_style"].items()
            }
    if data:
        lines += [r.plot("content_style", plots.plot_content_style, data), ""]
    return lines


@register_renderer("embedding_map")
def render_embedding_map(r: ReportContext) -> list[str]:
    maps = {label: m["embedding_map"] for label, m in r.first.items() if m.get("embedding_map")}
    class_names = next(iter(r.first.values())).get("splits", {}).get("classes")
    method = next(iter(maps.values())).get("method", "t-SNE")
    return [
        r.plot("embedding_map", plots.plot_embedding_maps, maps, class_names),
        "",
        method + " (at most 2,000 test points per run).",
        "",
    ]


_IMAGE_CAPTIONS = {
    "certainty": "most and least certain test images",
    "reconstructions": "reconstructions",
    "samples": "samples",
}


@register_renderer("images")
def render_images(r: ReportContext) -> list[str]:
    """Copies the grids each evaluation wrote into the report folder."""
    lines = []
    for label, m in r.first.items():
        for name, rel in (m.get("images") or {}).items():
            src = r.first_dir[label] / rel
            if not src.exists():
                continue
            (r.out / "images").mkdir(exist_ok=True)
            dst = r.out / "images" / f"{slug(label)}-{name}.png"
            shutil.copyfile(src, dst)
            r.plots[f"{label}/{name}"] = f"images/{dst.name}"
            caption = _IMAGE_CAPTIONS.get(name, name)
            lines += [f"**{label}: {caption}**", "", f"![{label} {caption}](images/{dst.name})", ""]
    return lines
