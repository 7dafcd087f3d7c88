"""Content vs style: a class probe next to probes for rotation, scale, shift, brightness (, thickness)."""

from __future__ import annotations

from typing import Any

from probssl.evaluation._utils import subsample_rows
from probssl.evaluation.sections.base import EvalContext, Section, register_section
from probssl.evaluation.style import STYLE_TASKS, content_style_probes


@register_section
class ContentStyle(Section):
    name = "content_style"
    title = "Content vs style"
    order = 70
    skip_name = "style"

    def run(self, ctx: EvalContext) -> dict[str, Any]:
        opts, s, y = ctx.opts, ctx.splits, ctx.labels
        tr = subsample_rows(len(s.train), opts.style_train_samples, opts.seed)
        te = subsample_rows(len(s.test), opts.style_test_samples, opts.seed)
        out = content_style_probes(
            lambda x: ctx.method.represent(x.to(ctx.device), ctx.kind).float(),
            s.train.images[tr],
            y[0][tr],
            s.test.images[te],
            y[2][te],
            seed=opts.seed,
            batch_size=opts.batch_size,
        )
        ctx.top["style_tasks"] = {t: STYLE_TASKS[t].description for t in out if t in STYLE_TASKS}
        return out

    def summary(self, result: dict[str, Any]) -> dict[str, Any]:
        return {"content_acc" if task == "content" else f"style_acc/{task}": r["acc"] for task, r in result.items()}
