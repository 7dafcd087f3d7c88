"""Geometry: covariance spectrum and effective rank, alignment (two augmented views) and uniformity."""

from __future__ import annotations

from typing import Any

import torch

from probssl.augment import augmenter_from_config
from probssl.evaluation._utils import rounded_floats, subsample_rows
from probssl.evaluation.alignment import alignment, uniformity
from probssl.evaluation.features import extract
from probssl.evaluation.geometry import covariance_spectrum, effective_rank
from probssl.evaluation.sections.base import EvalContext, Section, register_section


def _space(z: torch.Tensor) -> dict[str, Any]:
    return {
        "dim": int(z.shape[1]),
        "effective_rank": effective_rank(z),
        "spectrum": rounded_floats(covariance_spectrum(z), 8),
    }


@register_section
class Geometry(Section):
    name = "geometry"
    title = "Geometry"
    order = 20
    skip_name = "geometry"
    needs_labels = False
    parts = ("alignment",)

    def run(self, ctx: EvalContext) -> dict[str, Any]:
        out: dict[str, Any] = {"representation": _space(ctx.feats[2]), "embedding": _space(ctx.embedding)}
        out["split"] = "test"
        if ctx.opts.enabled("alignment"):
            self._alignment(ctx, out)
        return out

    def _alignment(self, ctx: EvalContext, out: dict[str, Any]) -> None:
        opts, test = ctx.opts, ctx.splits.test
        rows = subsample_rows(len(test), opts.alignment_samples, opts.seed)
        augmenter = augmenter_from_config(ctx.config.augment, ctx.splits.image_shape)
        views = augmenter(test.images[rows], views=2, generator=torch.Generator().manual_seed(opts.seed))
        for space, kind in (("embedding", "mean"), ("representation", ctx.kind)):
            z1, z2 = (extract(ctx.method, v, kind, opts.batch_size, ctx.device, opts.precision) for v in views)
            out[space]["alignment"] = alignment(z1, z2)
            z = ctx.embedding if space == "embedding" else ctx.feats[2]
            out[space]["uniformity"] = uniformity(z, max_samples=2000, seed=opts.seed)
        out["alignment_protocol"] = (
            f"alignment: mean squared distance between the L2-normalised codes of two views of {len(rows)} test "
            f"images augmented with the run's own augmenter (recipe {ctx.config.augment.recipe!r}); uniformity: "
            "log mean exp(-2 squared distance) over all pairs of <= 2000 normalised test codes"
        )

    def summary(self, result: dict[str, Any]) -> dict[str, Any]:
        s = {
            "effective_rank": result["representation"]["effective_rank"],
            "embedding_effective_rank": result["embedding"]["effective_rank"],
        }
        for space, suffix in (("embedding", ""), ("representation", "/representation")):
            for key in ("alignment", "uniformity"):
                if key in result[space]:
                    s[key + suffix] = result[space][key]
        return s
