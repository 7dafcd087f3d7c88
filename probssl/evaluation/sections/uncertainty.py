"""Uncertainty: every per-image score; OOD, misclassification and selective metrics; corruption severity."""

from __future__ import annotations

import time
from typing import Any

from torch import Tensor

from probssl.data import to_float_images
from probssl.evaluation._utils import rounded_floats, subsample_rows
from probssl.evaluation.corruptions import CORRUPTIONS, SEVERITIES
from probssl.evaluation.ood import make_ood_images
from probssl.evaluation.sections.base import EvalContext, Section, register_section
from probssl.evaluation.selective import augrc
from probssl.evaluation.uncertainty import (
    aurc,
    aurc_optimal,
    misclassification_detection,
    ood_detection,
    selective_accuracy_curve,
)


def score_metrics(u: Tensor, correct: Tensor, ood_scores: dict[str, Tensor]) -> dict[str, Any]:
    """Every metric of one score: u [N_test], correct [N_test] bool, ood_scores {set: [N_set]}."""
    coverage, accuracy = selective_accuracy_curve(u, correct, num_points=50)
    risk, best = aurc(u, correct), aurc_optimal(correct)
    return {
        "mean_test": float(u.mean()),
        "std_test": float(u.std()) if len(u) > 1 else 0.0,
        "misclassification": misclassification_detection(u, correct),
        "selective": {
            "coverage": rounded_floats(coverage),
            "accuracy": rounded_floats(accuracy),
            "aurc": risk,
            "aurc_optimal": best,
            "eaurc": risk - best,
            "augrc": augrc(u, correct),
        },
        "ood": {name: {**ood_detection(u, s), "mean_ood": float(s.mean())} for name, s in ood_scores.items()},
    }


@register_section
class Uncertainty(Section):
    name = "uncertainty"
    title = "Uncertainty"
    order = 40
    parts = ("corruptions",)

    def run(self, ctx: EvalContext) -> dict[str, Any]:
        opts, test = ctx.opts, ctx.splits.test
        ood_images, ood_desc = {}, {}
        for name in opts.ood:
            ood_images[name], ood_desc[name] = make_ood_images(
                name, ctx.splits, ctx.config, opts.seed, opts.ood_max_images
            )
        tic = time.perf_counter()
        scorer, correct = ctx.scorer(), ctx.correct()
        test_scores = ctx.test_scores()
        ood_scores = {name: scorer.all(images) for name, images in ood_images.items()}
        scores = {}
        for name, u in test_scores.items():
            per_set = {ood: ood_scores[ood][name] for ood in ood_images}
            scores[name] = {"description": scorer.descriptions[name], **score_metrics(u, correct, per_set)}
        ctx.timing["uncertainty"] = time.perf_counter() - tic
        if opts.enabled("corruptions"):
            tic = time.perf_counter()
            rows = subsample_rows(len(test), opts.corruption_samples, opts.seed)
            for name, result in scorer.vs_severity(to_float_images(test.images[rows])).items():
                scores[name]["corruption"] = result
            ctx.timing["corruptions"] = time.perf_counter() - tic
        return self._assemble(ctx, scores, test_scores, ood_images, ood_scores, ood_desc)

    def _assemble(self, ctx, scores, test_scores, ood_images, ood_scores, ood_desc) -> dict[str, Any]:
        opts, n_test = ctx.opts, len(ctx.splits.test)
        saved = subsample_rows(n_test, opts.max_saved, opts.seed)
        ood_rows = {name: subsample_rows(len(images), opts.max_saved, opts.seed) for name, images in ood_images.items()}
        corrupted = int(min(n_test, opts.corruption_samples or n_test)) if opts.enabled("corruptions") else 0
        return {
            "primary": ctx.scorer().primary,
            "scores_available": ctx.scorer().names,
            "ood_sets": {name: {"description": ood_desc[name], "num_images": len(x)} for name, x in ood_images.items()},
            "corruption_levels": {n: list(SEVERITIES[n]) for n in CORRUPTIONS} if corrupted else {},
            "corruption_samples": corrupted,
            "scores": scores,
            "samples": {
                "test_index": saved.tolist(),
                "test": {name: rounded_floats(u[saved]) for name, u in test_scores.items()},
                "ood": {
                    ood: {name: rounded_floats(u[ood_rows[ood]]) for name, u in per.items()}
                    for ood, per in ood_scores.items()
                },
                "labels": ctx.labels[2][saved].tolist(),
                "correct": ctx.correct()[saved].tolist(),
            },
        }

    def summary(self, result: dict[str, Any]) -> dict[str, Any]:
        primary = result["scores"][result["primary"]]
        s = {
            "uncertainty_score": result["primary"],
            "mean_uncertainty": primary["mean_test"],
            "misclassification_auroc": primary["misclassification"]["auroc"],
            "aurc": primary["selective"]["aurc"],
            "eaurc": primary["selective"]["eaurc"],
            "augrc": primary["selective"].get("augrc"),
        }
        for ood, r in primary["ood"].items():
            s[f"ood_auroc/{ood}"] = r["auroc"]
            s[f"ood_fpr95/{ood}"] = r["fpr95"]
        # the same numbers under the names URL and torch-uncertainty use
        s.update({f"ood/AUROC/{ood}": r["auroc"] for ood, r in primary["ood"].items()})
        s.update({f"ood/FPR95/{ood}": r["fpr95"] for ood, r in primary["ood"].items()})
        s["sc/AURC"], s["sc/AUGRC"] = primary["selective"]["aurc"], primary["selective"].get("augrc")
        for name, r in primary.get("corruption", {}).items():
            s[f"corruption_spearman/{name}"] = r["spearman"]
        return s

    def flat(self, result: dict[str, Any]) -> dict[str, float]:
        """Every score's metrics as ``score/NAME/...``."""
        out = {}
        for name, s in (result.get("scores") or {}).items():
            p = f"score/{name}/"
            out[p + "mean"] = s.get("mean_test")
            out[p + "misclassification_auroc"] = (s.get("misclassification") or {}).get("auroc")
            sel = s.get("selective") or {}
            out[p + "aurc"], out[p + "eaurc"], out[p + "augrc"] = sel.get("aurc"), sel.get("eaurc"), sel.get("augrc")
            for ood, r in (s.get("ood") or {}).items():
                for key in ("auroc", "aupr", "fpr95"):
                    out[f"{p}ood_{key}/{ood}"] = r.get(key)
            for corruption, r in (s.get("corruption") or {}).items():
                out[f"{p}corruption_spearman/{corruption}"] = r.get("spearman")
        return out
