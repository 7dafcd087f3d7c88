"""Fine-tuning of the whole network (opt-in: it trains a copy of the backbone with a linear head)."""

from __future__ import annotations

from typing import Any

from probssl.evaluation.finetune import fine_tune
from probssl.evaluation.sections.base import EvalContext, Section, register_section


@register_section
class FineTuning(Section):
    name = "fine_tuning"
    title = "Fine-tuning"
    order = 95
    skip_name = "fine_tune"

    def run(self, ctx: EvalContext) -> dict[str, Any]:
        o = ctx.opts
        return fine_tune(
            ctx.method,
            ctx.splits,
            ctx.config,
            epochs=o.fine_tune_epochs,
            lr=o.fine_tune_lr,
            weight_decay=o.fine_tune_weight_decay,
            batch_size=o.fine_tune_batch_size,
            device=ctx.device,
            seed=o.seed,
        )

    def summary(self, result: dict[str, Any]) -> dict[str, Any]:
        return {"fine_tune_acc": result["test_acc"]}
