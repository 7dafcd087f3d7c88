"""Compression: bits of one representation vs bits of the raw image, and the accuracy at that size."""

from __future__ import annotations

from typing import Any

from probssl.evaluation.probes import linear_probe
from probssl.evaluation.sections.base import EvalContext, Section, register_section
from probssl.methods import Method, compression_ratio


def representation_bits(method: Method, kind: str, dim: int) -> tuple[int, str]:
    """Storage of one representation in bits, and the rule used.

    bits: one bit per dimension; the method's own ``representation_bits()`` (e.g. SCL, whose code size is
    its latent layer's) when ``kind`` is its default representation; otherwise 32 bits (float32) per dimension.
    """
    if kind == "bits":
        return dim, "1 bit per dimension (binary code)"
    own = getattr(method, "representation_bits", None)
    if callable(own) and kind == method.default_representation:
        return int(own()), f"{type(method).__name__}.representation_bits()"
    return 32 * dim, "32 bits (float32) per dimension"


@register_section
class Compression(Section):
    name = "compression"
    title = "Compression"
    order = 60

    def run(self, ctx: EvalContext) -> dict[str, Any]:
        dim = int(ctx.feats[0].shape[1])
        bits, rule = representation_bits(ctx.method, ctx.kind, dim)
        c, h, w = ctx.splits.image_shape
        input_bits = c * h * w * 8
        out = {
            "representation_bits": bits,
            "bits_rule": rule,
            "input_bits": input_bits,
            "input_bits_rule": f"C*H*W*8 = {c}*{h}*{w}*8",
            "ratio": compression_ratio(ctx.splits.image_shape, bits),
            "linear_acc": ctx.linear().test_acc,
        }
        curve = ctx.opts.compression_curve
        if curve if curve is not None else bits / dim < 32:
            out["curve"] = self._curve(ctx, dim, bits / dim)
            out["curve_rule"] = "linear probe on the first d dimensions of the code, d = D, D/2, D/4, ..."
        return out

    def _curve(self, ctx: EvalContext, dim: int, bits_per_dim: float) -> list[dict[str, Any]]:
        f, y = ctx.feats, ctx.labels
        curve, d = [], dim
        while d >= 1 and len(curve) < 6:
            if d == dim:
                acc, val = ctx.linear().test_acc, None
            else:
                r = linear_probe(f[0][:, :d], y[0], f[1][:, :d], y[1], f[2][:, :d], y[2], ctx.opts.linear_weight_decays)
                acc, val = r.test_acc, r.val_acc
            curve.append({"dims": d, "bits": int(round(d * bits_per_dim)), "linear_acc": acc, "val_acc": val})
            d //= 2
        return sorted(curve, key=lambda r: r["bits"])

    def summary(self, result: dict[str, Any]) -> dict[str, Any]:
        return {"representation_bits": result["representation_bits"], "compression_ratio": result["ratio"]}
