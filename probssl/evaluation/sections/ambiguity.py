"""Ambiguity with a known ground truth, the VCL paper's uncertainty protocol made checkable on any dataset:
blends lambda x_a + (1 - lambda) x_b of two test images of different classes (ambiguity = H(lambda); Spearman
rho of every score with it) and centre crops (URL's croppedHasBiggerUnc: the share of images whose crop is
more uncertain than the full image)."""

from __future__ import annotations

from typing import Any

import torch

from probssl.evaluation._utils import subsample_rows
from probssl.evaluation.ambiguity import blend_pairs, center_crops, cropped_has_bigger_uncertainty, spearman
from probssl.evaluation.sections.base import EvalContext, Section, register_section

LAMBDAS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)
CROP_FRACTIONS = (0.8, 0.6, 0.4)


@register_section
class Ambiguity(Section):
    name = "ambiguity"
    title = "Ambiguity (blends and crops)"
    order = 47

    def run(self, ctx: EvalContext) -> dict[str, Any]:
        opts, test = ctx.opts, ctx.splits.test
        rows = subsample_rows(len(test), opts.ambiguity_samples, opts.seed)
        images, labels = test.images[rows], test.labels[rows]
        generator = torch.Generator().manual_seed(opts.seed)
        blends, ambiguity, _ = blend_pairs(images, labels, LAMBDAS, generator)
        scorer = ctx.scorer()
        blend_scores = scorer.all(blends)
        full = scorer.all(images)
        crops = center_crops(images, CROP_FRACTIONS)
        crop_scores = [scorer.all(c) for c in crops]
        out = {}
        for name in scorer.names:
            per_fraction = {
                str(f): cropped_has_bigger_uncertainty(full[name], s[name]) for f, s in zip(CROP_FRACTIONS, crop_scores)
            }
            out[name] = {
                "blend_spearman": spearman(blend_scores[name].double(), ambiguity),
                "crop_bigger": sum(per_fraction.values()) / len(per_fraction),
                "crop_bigger_by_fraction": per_fraction,
            }
        return {
            "primary": scorer.primary,
            "num_images": len(rows),
            "lambdas": list(LAMBDAS),
            "crop_fractions": list(CROP_FRACTIONS),
            "scores": out,
            "rule": "blend rho: Spearman correlation of the score with H(lambda) over every blend; crop: share of "
            "images whose centre crop (side fraction f, resized back) scores strictly higher, mean over f",
        }

    def summary(self, result: dict[str, Any]) -> dict[str, Any]:
        primary = result["scores"][result["primary"]]
        return {"blend_spearman": primary["blend_spearman"], "crop_bigger": primary["crop_bigger"]}

    def flat(self, result: dict[str, Any]) -> dict[str, float]:
        out = {}
        for name, s in (result.get("scores") or {}).items():
            out[f"score/{name}/blend_spearman"] = s["blend_spearman"]
            out[f"score/{name}/crop_bigger"] = s["crop_bigger"]
        return out
