"""Evaluation of frozen representations: probes, geometry, information, uncertainty, compression, style."""

from probssl.evaluation import monitors  # noqa: F401  (registers the online monitor for every Trainer)
from probssl.evaluation.alignment import alignment, uniformity
from probssl.evaluation.evaluate import (
    evaluate_baselines,
    evaluate_method,
    evaluate_run,
    linear_probe_predictions,
    probe_representations,
    representation_bits,
    summarize,
)
from probssl.evaluation.features import extract, extract_embeddings, extract_uncertainty
from probssl.evaluation.geometry import covariance_spectrum, effective_rank
from probssl.evaluation.ood import DEFAULT_OOD, SYNTHETIC_OOD, make_ood_images
from probssl.evaluation.options import EvalOptions
from probssl.evaluation.probes import (
    ProbeResult,
    fit_logistic_regression,
    knn_predict,
    knn_probe,
    linear_probe,
    standardize,
)
from probssl.evaluation.sections import EvalContext, Section, list_sections, register_section, skip_names

__all__ = [
    "DEFAULT_OOD",
    "EvalOptions",
    "ProbeResult",
    "SYNTHETIC_OOD",
    "alignment",
    "covariance_spectrum",
    "effective_rank",
    "evaluate_baselines",
    "evaluate_method",
    "evaluate_run",
    "EvalContext",
    "Section",
    "list_sections",
    "register_section",
    "skip_names",
    "summarize",
    "extract",
    "extract_embeddings",
    "extract_uncertainty",
    "fit_logistic_regression",
    "knn_predict",
    "knn_probe",
    "linear_probe",
    "linear_probe_predictions",
    "make_ood_images",
    "probe_representations",
    "representation_bits",
    "standardize",
    "uniformity",
]
