"""PNG plots for reports (matplotlib, headless Agg backend).

Every function takes plain Python data (lists / dicts read from eval.json), writes one PNG and returns its
path. Every plot has a title, axis labels and a legend (or a colour bar) so that it reads on its own.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = [
    "plot_accuracy_vs_bits",
    "plot_content_style",
    "plot_corruption_curves",
    "plot_embedding_maps",
    "plot_loss_curves",
    "plot_ood_histograms",
    "plot_selective_curves",
    "plot_spectra",
    "plot_uncertainty_histogram",
]

COLORS = plt.get_cmap("tab10").colors
SCORE_STYLE = {"posterior": "-", "mc_dispersion": "--", "knn_distance": ":"}


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def _grid(n: int, max_cols: int = 3, size: tuple[float, float] = (4.6, 3.6)):
    cols = min(n, max_cols)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, list(axes.flat[:n])


def plot_spectra(
    spectra: dict[str, dict[str, list[float]] | list[float]],
    path: Path,
    title: str = "Singular-value spectra (test split)",
) -> Path:
    """Normalised singular values sigma_i / sigma_1 of the centred features, one line per run, log scale.

    ``spectra``: {run: {"representation": covariance eigenvalues, "embedding": ...}} (a bare list is taken as
    the embedding). Singular values are the square roots of the covariance eigenvalues; a cliff means
    dimensional collapse.
    """
    spaces = ["representation", "embedding"]
    spectra = {k: (v if isinstance(v, dict) else {"embedding": v}) for k, v in spectra.items()}
    spaces = [s for s in spaces if any(s in v for v in spectra.values())]
    fig, axes = plt.subplots(1, len(spaces), figsize=(5.6 * len(spaces), 4.2), squeeze=False)
    for ax, space in zip(axes[0], spaces):
        for i, (name, spec) in enumerate(spectra.items()):
            if space not in spec:
                continue
            sv = np.sqrt(np.clip(np.asarray(spec[space], dtype=float), 0, None))
            sv = sv / max(sv[0], 1e-30) if len(sv) else sv
            ax.semilogy(np.arange(1, len(sv) + 1), np.clip(sv, 1e-8, None), label=name, lw=2, color=COLORS[i % 10])
        ax.set_xlabel("index i (descending)")
        ax.set_ylabel("sigma_i / sigma_1 (log scale)")
        ax.set_title(f"{space}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def plot_loss_curves(curves: dict[str, tuple[list[int], list[float]]], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (name, (steps, losses)) in enumerate(curves.items()):
        ax.plot(steps, losses, label=name, lw=2, color=COLORS[i % 10])
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("training loss (all terms)")
    ax.set_title("Training loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_monitor_curves(data: dict[str, dict[str, tuple[list[int], list[float]]]], path: Path) -> Path:
    """One panel per monitor key ({key: {group: (steps, values)}}), the online monitors against steps."""
    fig, axes = _grid(len(data))
    for ax, (key, curves) in zip(axes, data.items()):
        for i, (name, (steps, values)) in enumerate(curves.items()):
            ax.plot(steps, values, label=name, lw=2, color=COLORS[i % 10], marker="o", ms=3)
        ax.set_xlabel("optimiser step")
        ax.set_title(key.removeprefix("monitor/"))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    for ax in axes[len(data) :]:
        ax.axis("off")
    return _save(fig, path)


def plot_uncertainty_histogram(
    scores: dict[str, list[float]], path: Path, title: str, xlabel: str = "uncertainty score"
) -> Path:
    """Histogram of per-image uncertainty, one series per group (e.g. correct vs wrong)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    all_scores = np.concatenate([np.asarray(v, dtype=float) for v in scores.values()])
    bins = np.linspace(all_scores.min(), all_scores.max() + 1e-12, 40) if len(all_scores) else 10
    for name, values in scores.items():
        ax.hist(values, bins=bins, alpha=0.55, density=True, label=f"{name} (n={len(values)})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_ood_histograms(data: dict[str, dict], path: Path) -> Path:
    """One panel per run: histogram of its uncertainty score on the test split vs each OOD set.

    ``data``: {run: {"score": name, "test": [...], "ood": {set: [...]}, "auroc": {set: value}}}.
    """
    fig, axes = _grid(len(data))
    for ax, (name, d) in zip(axes, data.items()):
        series = {"test (in-distribution)": d["test"], **{f"OOD: {k}": v for k, v in d["ood"].items()}}
        values = np.concatenate([np.asarray(v, dtype=float) for v in series.values()])
        lo, hi = float(values.min()), float(values.max())
        bins = np.linspace(lo, hi + max(1e-12, 1e-6 * abs(hi)), 40)
        for i, (label, v) in enumerate(series.items()):
            auroc = d.get("auroc", {}).get(label.removeprefix("OOD: "))
            suffix = f", AUROC {auroc:.3f}" if auroc is not None else ""
            v = np.asarray(v, dtype=float)
            ax.hist(v, bins=bins, alpha=0.2, density=True, color=COLORS[i % 10])  # light fill, outline on top
            ax.hist(
                v,
                bins=bins,
                density=True,
                histtype="step",
                lw=1.8,
                color=COLORS[i % 10],
                label=f"{label} (n={len(v)}{suffix})",
            )
        ax.set_title(f"{name}", fontsize=10)
        ax.set_xlabel(f"uncertainty: {d['score']}")
        ax.set_ylabel("density")
        ax.legend(fontsize=7, loc="best", framealpha=0.85)
    fig.suptitle("Uncertainty in- vs out-of-distribution (higher = more uncertain)", wrap=True)
    return _save(fig, path)


def plot_selective_curves(data: dict[str, dict[str, dict]], path: Path) -> Path:
    """One panel per run: accuracy of the linear probe on the most certain fraction of the test split.

    ``data``: {run: {score: {"coverage": [...], "accuracy": [...], "aurc": value}}}.
    """
    fig, axes = _grid(len(data))
    for ax, (name, curves) in zip(axes, data.items()):
        full = None
        for i, (score, c) in enumerate(curves.items()):
            aurc = c.get("aurc")
            label = f"{score}" + (f" (AURC {aurc:.3f})" if aurc is not None else "")
            ax.plot(c["coverage"], c["accuracy"], SCORE_STYLE.get(score, "-"), lw=2, color=COLORS[i % 10], label=label)
            full = c["accuracy"][-1]
        if full is not None:
            ax.axhline(full, color="grey", lw=1, alpha=0.7, label=f"all test images ({full:.3f})")
        ax.set_xlim(0, 1.02)
        ax.set_xlabel("coverage (most certain fraction kept)")
        ax.set_ylabel("probe accuracy on kept images")
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle("Selective accuracy (rejecting the most uncertain test images)", wrap=True)
    return _save(fig, path)


def plot_embedding_maps(data: dict[str, dict], path: Path, class_names: list[str] | None = None) -> Path:
    """One row per run: the 2-D map coloured by class (left) and by uncertainty (right).

    ``data``: {run: {"x", "y", "labels", "uncertainty" (optional), "uncertainty_score", "method"}}.
    """
    n = len(data)
    fig, axes = plt.subplots(n, 2, figsize=(11, 4.6 * n), squeeze=False)
    cmap = plt.get_cmap("tab10" if max(max(d["labels"]) for d in data.values()) < 10 else "tab20")
    for row, (name, d) in enumerate(data.items()):
        x, y, labels = (np.asarray(d[k]) for k in ("x", "y", "labels"))
        ax = axes[row, 0]
        for c in np.unique(labels):
            keep = labels == c
            label = class_names[c] if class_names and c < len(class_names) else str(c)
            ax.scatter(x[keep], y[keep], s=7, color=cmap(int(c) % cmap.N), label=label)
        ax.set_title(f"{name}: coloured by class (n={len(x)})", fontsize=10)
        ax.set_xlabel("t-SNE 1")
        ax.set_ylabel("t-SNE 2")
        ax.legend(fontsize=7, markerscale=2, title="class", title_fontsize=7, loc="best", ncol=2)
        ax = axes[row, 1]
        if d.get("uncertainty") is not None:
            u = np.asarray(d["uncertainty"], dtype=float)
            order = np.argsort(u)  # most uncertain drawn last, on top
            sc = ax.scatter(x[order], y[order], s=7, c=u[order], cmap="viridis")
            fig.colorbar(sc, ax=ax, label=f"uncertainty ({d.get('uncertainty_score', 'score')})")
            ax.set_title(f"{name}: coloured by uncertainty", fontsize=10)
        else:
            ax.text(0.5, 0.5, "no uncertainty score", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("t-SNE 1")
        ax.set_ylabel("t-SNE 2")
    fig.suptitle("2-D map (t-SNE) of the test representations", wrap=True)
    return _save(fig, path)


def plot_accuracy_vs_bits(data: dict[str, dict], path: Path) -> Path:
    """Linear-probe accuracy against the storage of one representation in bits (log scale).

    ``data``: {run: {"bits": b, "acc": a, "curve": [{"bits", "linear_acc"}, ...] (optional),
    "input_bits": raw image bits}}; curves are code prefixes of compressed (e.g. SCL-Bernoulli) codes.
    """
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    input_bits = None
    accs = [d["acc"] for d in data.values()] + [p["linear_acc"] for d in data.values() for p in d.get("curve") or []]
    for i, (name, d) in enumerate(data.items()):
        color = COLORS[i % 10]
        if d.get("curve"):
            ax.plot(
                [p["bits"] for p in d["curve"]],
                [p["linear_acc"] for p in d["curve"]],
                "o-",
                color=color,
                lw=1.5,
                label=f"{name} (code prefixes)",
            )
        ax.plot([d["bits"]], [d["acc"]], "*", ms=14, color=color, label=f"{name}: {d['bits']} bits")
        input_bits = d.get("input_bits", input_bits)
    if input_bits:
        ax.axvline(input_bits, color="grey", ls="--", lw=1, label=f"raw image ({input_bits} bits)")
    ax.set_xscale("log", base=2)
    ax.set_ylim(max(0.0, min(accs) - 0.1), min(1.02, max(accs) + 0.05))
    ax.set_xlabel("bits per representation (log2 scale)")
    ax.set_ylabel("linear-probe test accuracy")
    ax.set_title("Accuracy vs representation size")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_corruption_curves(data: dict[str, dict[str, list[float]]], path: Path, score_names: dict[str, str]) -> Path:
    """One panel per corruption: mean uncertainty / clean mean vs severity, one line per run.

    ``data``: {run: {corruption: [mean uncertainty at severity 0..5]}}; ``score_names``: {run: score}.
    Dividing by the clean value puts scores of different units on one axis.
    """
    corruptions = sorted({c for d in data.values() for c in d})
    fig, axes = plt.subplots(1, len(corruptions), figsize=(4.4 * len(corruptions), 3.8), squeeze=False)
    for ax, corruption in zip(axes[0], corruptions):
        for i, (name, d) in enumerate(data.items()):
            if corruption not in d:
                continue
            u = np.asarray(d[corruption], dtype=float)
            rel = u / u[0] if abs(u[0]) > 1e-12 else u
            ax.plot(np.arange(len(u)), rel, "o-", lw=2, color=COLORS[i % 10], label=f"{name} ({score_names[name]})")
        ax.set_xlabel("severity (0 = clean)")
        ax.set_ylabel("mean uncertainty / clean mean")
        ax.set_title(corruption.replace("_", " "))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Uncertainty vs corruption severity", wrap=True)
    return _save(fig, path)


def plot_content_style(data: dict[str, dict[str, tuple[float, float]]], path: Path) -> Path:
    """Grouped bars: linear-probe accuracy for the class (content) and each style task, per run; chance ticks.

    ``data``: {run: {task: (accuracy, chance)}}.
    """
    tasks = list(dict.fromkeys(t for d in data.values() for t in d))
    n = len(data)
    width = 0.8 / max(n, 1)
    fig, ax = plt.subplots(figsize=(1.3 * len(tasks) + 3, 4.4))
    xs = np.arange(len(tasks))
    for i, (name, d) in enumerate(data.items()):
        acc = [d.get(t, (np.nan, np.nan))[0] for t in tasks]
        ax.bar(xs + (i - (n - 1) / 2) * width, acc, width, color=COLORS[i % 10], label=name)
    for j, t in enumerate(tasks):
        chance = next((d[t][1] for d in data.values() if t in d), None)
        if chance is not None:
            ax.hlines(
                chance, j - 0.45, j + 0.45, colors="black", linestyles="--", lw=1, label="chance" if j == 0 else None
            )
    ax.set_xticks(xs, [t.replace("_", " ") for t in tasks], rotation=20)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("linear-probe test accuracy")
    ax.set_title("Content (class) vs style: what the representation keeps")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)
