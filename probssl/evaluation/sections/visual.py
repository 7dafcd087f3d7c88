"""Pictures: a t-SNE map of the test representations, and image grids (most / least certain test images,
reconstructions and samples of generative methods)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from probssl.evaluation._utils import rounded_floats, subsample_rows
from probssl.evaluation.sections.base import EvalContext, Section, register_section
from probssl.evaluation.visuals import images_section, tsne_map

TSNE_METHOD = "t-SNE (sklearn, perplexity min(30, (n-1)/3), PCA init) of the standardised test representations"


@register_section
class EmbeddingMap(Section):
    name = "embedding_map"
    title = "Embedding map"
    order = 80

    def run(self, ctx: EvalContext) -> dict[str, Any] | None:
        if len(ctx.splits.test) < 5:
            return None
        rows = subsample_rows(len(ctx.splits.test), ctx.opts.map_samples, ctx.opts.seed)
        coords = tsne_map(ctx.feats[2][rows], ctx.opts.seed)
        out = {
            "method": TSNE_METHOD,
            "index": rows.tolist(),
            "x": rounded_floats(coords[:, 0], 4),
            "y": rounded_floats(coords[:, 1], 4),
            "labels": ctx.labels[2][rows].tolist(),
            "correct": ctx.correct()[rows].tolist(),
        }
        if "uncertainty" in ctx.results:  # colour by the scores the uncertainty section computed
            primary = ctx.scorer().primary
            out["uncertainty"] = rounded_floats(ctx.test_scores()[primary][rows])
            out["uncertainty_score"] = primary
        return out


@register_section
class Images(Section):
    name = "images"
    title = "Images"
    order = 90

    def run(self, ctx: EvalContext) -> dict[str, Any] | None:
        if ctx.image_dir is None:
            return None
        primary = ctx.scorer().primary
        scores = ctx.test_scores()[primary]
        return images_section(ctx.method, ctx.splits, primary, scores, Path(ctx.image_dir), ctx.opts, ctx.device)
