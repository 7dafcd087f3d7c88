"""PNG plots for reports (matplotlib, headless Agg backend)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_spectra(spectra: dict[str, list[float]], path: Path, title: str) -> Path:
    """Normalised covariance eigenvalues, one line per run, log scale: collapse shows as a cliff."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, eig in spectra.items():
        eig = np.asarray(eig, dtype=float)
        eig = eig / max(eig.sum(), 1e-30)
        ax.semilogy(np.arange(1, len(eig) + 1), np.clip(eig, 1e-12, None), label=name, lw=2)
    ax.set_xlabel("eigenvalue index (descending)")
    ax.set_ylabel("normalised eigenvalue (log scale)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return _save(fig, path)


def plot_loss_curves(curves: dict[str, tuple[list[int], list[float]]], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (steps, losses) in curves.items():
        ax.plot(steps, losses, label=name, lw=2)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("training loss (all terms)")
    ax.set_title("Training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_uncertainty_histogram(scores: dict[str, list[float]], path: Path, title: str) -> Path:
    """Histogram of per-image posterior uncertainty, one series per group (e.g. correct vs wrong)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    all_scores = np.concatenate([np.asarray(v, dtype=float) for v in scores.values()])
    bins = np.linspace(all_scores.min(), all_scores.max(), 40) if len(all_scores) else 10
    for name, values in scores.items():
        ax.hist(values, bins=bins, alpha=0.6, density=True, label=f"{name} (n={len(values)})")
    ax.set_xlabel("posterior uncertainty (sqrt(mean sigma^2) / ||m||)")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)
