"""Information: I(Z; Y) by a classifier lower bound and by the Ross (2014) kNN estimator."""

from __future__ import annotations

from typing import Any

from probssl.evaluation.information import mutual_information
from probssl.evaluation.sections.base import EvalContext, Section, register_section


@register_section
class Information(Section):
    name = "information"
    title = "Information"
    order = 30

    def run(self, ctx: EvalContext) -> dict[str, Any]:
        f, y = ctx.feats, ctx.labels
        return mutual_information(f[0], y[0], f[2], y[2], seed=ctx.opts.seed)

    def summary(self, result: dict[str, Any]) -> dict[str, Any]:
        return {
            "mi_lb_bits": result["classifier_lower_bound"]["bits"],
            "mi_knn_bits": result["knn_ross"]["bits"],
            "label_entropy_bits": result["entropy_y"]["bits"],
        }
