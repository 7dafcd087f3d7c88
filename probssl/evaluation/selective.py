"""Area Under the Generalized Risk-Coverage curve (AUGRC; Traub et al., NeurIPS 2024, "Overcoming Common
Flaws in the Evaluation of Selective Classification Systems").

The AURC averages the *selective* risk (error rate among the accepted inputs), which weights the few most
confident inputs heavily: one early error at coverage 1/N costs as much as the whole error rate. The AUGRC
instead averages the *generalized* risk, the share of ALL inputs that are accepted and wrong,

    GR(k / N) = (errors among the k most certain inputs) / N,      k = 1..N,

so every error counts by how many inputs are at least as uncertain. For large N,
AUGRC ~ (1 - AUROC) acc (1 - acc) + (1 - acc)^2 / 2 with AUROC that of the uncertainty for flagging errors:
(1-acc)^2/2 for a perfect ranking, (1-acc)/2 for an uninformative one. Lower is better.

The discretisation is torch-uncertainty's ``AUGRC`` metric (``metrics/classification/risk_coverage.py``):
the trapezoid area of GR over the coverages k/N, k = 1..N, divided by the support 1 - 1/N, which equals the
trapezoid mean of the N points. Ties in the uncertainty use the expected value under a uniformly random order
within the tie (as ``aurc`` in :mod:`probssl.evaluation.uncertainty`), where torch-uncertainty's unstable
argsort picks an arbitrary order.
"""

from __future__ import annotations

import torch

from probssl.evaluation.uncertainty import _expected_correct_cumsum

__all__ = ["augrc", "generalized_risk_curve"]


def generalized_risk_curve(uncertainty, correct) -> tuple[torch.Tensor, torch.Tensor]:
    """(coverage k/N [N], generalized risk [N]) for k = 1..N, inputs accepted in order of rising uncertainty.

    Shapes: uncertainty [N] (higher = more uncertain), correct [N] bool; both outputs float64. The
    generalized risk at k is the expected number of errors among the k most certain inputs, divided by N.
    """
    expected_correct = _expected_correct_cumsum(uncertainty, correct)
    n = len(expected_correct)
    kept = torch.arange(1, n + 1, dtype=torch.float64)
    return kept / n, (kept - expected_correct) / n


def augrc(uncertainty, correct) -> float:
    """AUGRC as torch-uncertainty's ``sc/AUGRC`` defines it (lower is better; 0 if nothing is wrong).

    Trapezoid mean of the generalized risk over the N coverages k/N (= trapezoid area / (1 - 1/N)).
    Shapes: uncertainty [N] (higher = more uncertain), correct [N] bool. nan for N < 2, as there.
    """
    _, risk = generalized_risk_curve(uncertainty, correct)
    if len(risk) < 2:
        return float("nan")
    return float((risk[1:] + risk[:-1]).sum() / (2 * (len(risk) - 1)))
