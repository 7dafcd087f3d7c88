"""Evaluation of frozen representations: probes, geometry and uncertainty."""
from probssl.evaluation.evaluate import evaluate_baselines, evaluate_method, evaluate_run, probe_representations
from probssl.evaluation.features import extract, extract_embeddings, extract_uncertainty
from probssl.evaluation.geometry import covariance_spectrum, effective_rank
from probssl.evaluation.probes import (ProbeResult, fit_logistic_regression, knn_predict, knn_probe, linear_probe,
                                       standardize)

__all__ = ["ProbeResult", "covariance_spectrum", "effective_rank", "evaluate_baselines", "evaluate_method",
           "evaluate_run", "extract", "extract_embeddings", "extract_uncertainty", "fit_logistic_regression",
           "knn_predict", "knn_probe", "linear_probe", "probe_representations", "standardize"]
