"""Float features stored in a bit budget: the baseline a binary code (SCL's Bernoulli bits) has to beat.

For each budget B bits per image, the representation is reduced by PCA (fitted on the training split) and
stored two ways, and a linear probe (the probes section's) is fitted on what a reader of the stored bits gets:

* ``sign``: B principal coordinates, one bit each (their sign; "PCA hashing"); when the representation has
  fewer than B dimensions, all of them, and fewer bits are used (``bits_used`` says how many);
* ``8bit``: B / 8 principal coordinates, each clipped to the training range and rounded to 256 levels.

``best`` is the higher test accuracy of the two (chosen on validation accuracy, so the choice is honest).
Off by default; switch it on with ``EvalOptions(extra={"quantized": {"bits": [32, 64, 128]}})``.
"""

from __future__ import annotations

from typing import Any

from probssl.evaluation.pca import fit_pca, sign_codes, uniform_codes
from probssl.evaluation.probes import linear_probe
from probssl.evaluation.sections.base import EvalContext, Section, register_section


@register_section
class Quantized(Section):
    name = "quantized"
    title = "Float features in a bit budget"
    order = 61
    default_on = False
    option_defaults = {"bits": [32, 64, 128, 256, 512]}

    def run(self, ctx: EvalContext) -> dict[str, Any]:
        f = ctx.feats
        width = int(f[0].shape[1])
        out: dict[str, Any] = {"representation_dim": width, "by_bits": {}}
        for budget in sorted({int(b) for b in ctx.option(self.name, "bits", self.option_defaults["bits"])}):
            rows = {}
            pca = fit_pca(f[0], min(budget, width))
            codes = [sign_codes(x, pca) for x in f]
            rows["sign"] = self._probe(ctx, codes, bits_used=pca.dim)
            if budget >= 8:
                pca8 = fit_pca(f[0], min(budget // 8, width))
                z0 = pca8(f[0])
                low, high = z0.min(0).values, z0.max(0).values
                rows["8bit"] = self._probe(ctx, [uniform_codes(x, pca8, 8, low, high) for x in f], 8 * pca8.dim)
            best = max(rows, key=lambda k: rows[k]["val_acc"])
            out["by_bits"][str(budget)] = {**rows, "best": best, "best_acc": rows[best]["linear_acc"]}
        return out

    @staticmethod
    def _probe(ctx: EvalContext, x: list, bits_used: int) -> dict[str, Any]:
        y = ctx.labels
        r = linear_probe(x[0], y[0], x[1], y[1], x[2], y[2], ctx.opts.linear_weight_decays)
        return {"bits_used": bits_used, "linear_acc": r.test_acc, "val_acc": r.val_acc}

    def summary(self, result: dict[str, Any]) -> dict[str, Any]:
        return {f"quantized_acc@{b}bits": r["best_acc"] for b, r in result["by_bits"].items()}
