"""Transferable uncertainty, the URL benchmark's yardstick (Kirchhof et al., NeurIPS 2023 D&B): on data the model
was NOT trained on -- another dataset (zero-shot) or held-out classes (``data.classes``) -- R@1 of leave-one-out
cosine 1-NN retrieval, and R-AUROC of every score for predicting whether that retrieval is correct."""

from __future__ import annotations

from typing import Any

from probssl.data import keep_classes, load_dataset
from probssl.evaluation._utils import subsample_rows
from probssl.evaluation.features import extract
from probssl.evaluation.ood import adapt_images, other_dataset
from probssl.evaluation.sections.base import EvalContext, Section, register_section
from probssl.evaluation.url import _r_auroc_from_correct, nearest_neighbor_correct

HELD_OUT = "held-out-classes"


def _targets(ctx: EvalContext) -> dict[str, tuple]:
    """{name: (images uint8 [M, C, H, W], labels [M], description)} for every retrieval target."""
    out = {}
    for spec in ctx.opts.retrieval:
        other = other_dataset(spec, ctx.splits, ctx.config, split="test")
        out[spec] = (adapt_images(other.images, ctx.splits.image_shape), other.labels, f"test split of {spec}")
    classes = ctx.config.data.classes
    if classes:
        d = ctx.config.data
        full = load_dataset(
            d.name, d.data_dir, val_fraction=d.val_fraction, split_seed=d.split_seed, download=d.download
        )
        held = keep_classes(full.test, classes, keep=False)
        if len(held.classes) >= 2:
            out[HELD_OUT] = (
                held.images,
                held.labels,
                f"test images of the classes not trained on: {list(held.classes)}",
            )
    return out


@register_section
class Retrieval(Section):
    name = "retrieval"
    title = "Transferable uncertainty (URL: R@1, R-AUROC)"
    order = 45

    def run(self, ctx: EvalContext) -> dict[str, Any] | None:
        targets = _targets(ctx)
        if not targets:
            return None
        out = {}
        for name, (images, labels, desc) in targets.items():
            rows = subsample_rows(len(images), ctx.opts.retrieval_max_images, ctx.opts.seed)
            images, labels = images[rows], labels[rows]
            feats = extract(ctx.method, images, ctx.kind, ctx.opts.batch_size, ctx.device, ctx.opts.precision)
            correct = nearest_neighbor_correct(feats, labels)
            scores = ctx.scorer().all(images, feats)
            out[name] = {
                "description": desc,
                "num_images": len(images),
                "R@1": float(correct.double().mean()),
                "R-AUROC": {s: _r_auroc_from_correct(u, correct) for s, u in scores.items()},
            }
        return {
            "primary": ctx.scorer().primary,
            "targets": out,
            "rule": "leave-one-out cosine 1-NN on the representation; R-AUROC = AUROC of -u for a correct retrieval",
        }

    def summary(self, result: dict[str, Any]) -> dict[str, Any]:
        s = {}
        for name, t in result["targets"].items():
            s[f"R@1/{name}"] = t["R@1"]
            s[f"R-AUROC/{name}"] = t["R-AUROC"].get(result["primary"])
        return s

    def flat(self, result: dict[str, Any]) -> dict[str, float]:
        return {
            f"score/{score}/R-AUROC/{name}": value
            for name, t in (result.get("targets") or {}).items()
            for score, value in t["R-AUROC"].items()
        }
