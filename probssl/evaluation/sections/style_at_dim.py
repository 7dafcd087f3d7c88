"""Content vs style at equal dimension: the style probes on the representation reduced to d dimensions by PCA.

A linear probe on a 128-d feature can read more than one on a 10-d latent just because it has more
coordinates, so comparing how much style two methods keep is only fair at one size. This section reduces the
representation to each requested d (PCA fitted on the clean training representations; a representation of at
most d dimensions is used whole) and runs the content and style probes of :mod:`probssl.evaluation.style` on it.
Off by default; switch it on with ``EvalOptions(extra={"style_at_dim": {"dims": [10]}})``.
"""

from __future__ import annotations

from typing import Any

from probssl.evaluation._utils import subsample_rows
from probssl.evaluation.pca import fit_pca
from probssl.evaluation.sections.base import EvalContext, Section, register_section
from probssl.evaluation.style import content_style_probes


@register_section
class StyleAtDim(Section):
    name = "style_at_dim"
    title = "Content vs style at equal dimension"
    order = 71
    default_on = False
    option_defaults = {"dims": [10]}

    def run(self, ctx: EvalContext) -> dict[str, Any]:
        opts, s, y = ctx.opts, ctx.splits, ctx.labels
        tr = subsample_rows(len(s.train), opts.style_train_samples, opts.seed)
        te = subsample_rows(len(s.test), opts.style_test_samples, opts.seed)
        width = int(ctx.feats[0].shape[1])
        out: dict[str, Any] = {"representation_dim": width, "by_dim": {}}
        for d in sorted({int(d) for d in ctx.option(self.name, "dims", self.option_defaults["dims"])}):
            pca = fit_pca(ctx.feats[0], d) if d < width else None

            def reduced(x, pca=pca):
                z = ctx.method.represent(x.to(ctx.device), ctx.kind).float()
                return z.cpu() if pca is None else pca(z)

            probes = content_style_probes(
                reduced, s.train.images[tr], y[0][tr], s.test.images[te], y[2][te], seed=opts.seed,
                batch_size=opts.batch_size,
            )  # fmt: skip
            out["by_dim"][str(d)] = {
                "reduction": "none (representation has <= d dimensions)" if pca is None else "PCA",
                "explained_variance": None if pca is None else float(pca.explained.sum()),
                "probes": probes,
            }
        return out

    def summary(self, result: dict[str, Any]) -> dict[str, Any]:
        flat = {}
        for d, r in result["by_dim"].items():
            for task, p in r["probes"].items():
                flat[f"content_acc@{d}d" if task == "content" else f"style_acc@{d}d/{task}"] = p["acc"]
        return flat
