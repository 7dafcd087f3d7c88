"""Reports: Markdown tables, JSON and PNG plots comparing evaluated runs."""
from probssl.report.markdown import write_report
from probssl.report.plots import plot_loss_curves, plot_spectra, plot_uncertainty_histogram

__all__ = ["plot_loss_curves", "plot_spectra", "plot_uncertainty_histogram", "write_report"]
