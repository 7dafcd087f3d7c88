"""Reports: Markdown tables, JSON and PNG plots comparing evaluated runs (mean ± s.e. over seeds)."""

from probssl.report.html import write_html
from probssl.report.markdown import aggregate, flat_metrics, group_key, group_runs, load_eval, write_report
from probssl.report.plots import (
    plot_accuracy_vs_bits,
    plot_content_style,
    plot_corruption_curves,
    plot_embedding_maps,
    plot_loss_curves,
    plot_ood_histograms,
    plot_selective_curves,
    plot_spectra,
    plot_uncertainty_histogram,
)

__all__ = [
    "aggregate",
    "flat_metrics",
    "group_key",
    "group_runs",
    "load_eval",
    "plot_accuracy_vs_bits",
    "plot_content_style",
    "plot_corruption_curves",
    "plot_embedding_maps",
    "plot_loss_curves",
    "plot_ood_histograms",
    "plot_selective_curves",
    "plot_spectra",
    "plot_uncertainty_histogram",
    "write_html",
    "write_report",
]
