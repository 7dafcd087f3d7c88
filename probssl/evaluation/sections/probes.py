"""Probes: linear (L-BFGS logistic regression), MLP, weighted-cosine kNN, GMM clustering."""

from __future__ import annotations

import math
import time
from typing import Any

from probssl.evaluation.clustering import clustering_scores
from probssl.evaluation.mlp_probe import mlp_probe
from probssl.evaluation.probes import ProbeResult, knn_probe
from probssl.evaluation.sections.base import EvalContext, Section, register_section

CLUSTERING_METHOD = (
    "diagonal GMM (EM, k-means init) on standardised features, PCA to 32 dims; Hungarian-matched accuracy, "
    "NMI (arithmetic), ARI"
)


def probe_dict(result: ProbeResult) -> dict[str, Any]:
    return {
        "test_acc": result.test_acc,
        "val_acc": result.val_acc,
        "selected": result.selected,
        "val_scores": {str(k): v for k, v in result.val_scores.items()},
    }


@register_section
class Probes(Section):
    name = "probes"
    title = "Probes (test accuracy)"
    order = 10
    parts = ("mlp", "clustering")

    def run(self, ctx: EvalContext) -> dict[str, Any]:
        f, y, opts = ctx.feats, ctx.labels, ctx.opts
        tic = time.perf_counter()
        knn = knn_probe(f[0], y[0], f[1], y[1], f[2], y[2], ks=opts.knn_k)
        out: dict[str, Any] = {"linear": probe_dict(ctx.linear()), "knn": probe_dict(knn)}
        ctx.timing["knn"] = time.perf_counter() - tic
        if opts.enabled("mlp"):
            tic = time.perf_counter()
            # >= ~20 steps per epoch on small training sets (1024-row batches would give digits 2 steps an epoch)
            batch = int(min(1024, max(32, math.ceil(len(f[0]) / 20))))
            out["mlp"] = probe_dict(mlp_probe(f[0], y[0], f[1], y[1], f[2], y[2], batch_size=batch, seed=opts.seed))
            out["mlp"]["batch_size"] = batch
            ctx.timing["mlp"] = time.perf_counter() - tic
        if opts.enabled("clustering"):
            tic = time.perf_counter()
            out["clustering"] = {
                **clustering_scores(f[2], y[2], seed=opts.seed),
                "num_clusters": ctx.splits.num_classes,
                "split": "test",
                "method": CLUSTERING_METHOD,
            }
            ctx.timing["clustering"] = time.perf_counter() - tic
        return out

    def summary(self, result: dict[str, Any]) -> dict[str, Any]:
        s = {"linear_acc": result["linear"]["test_acc"], "knn_acc": result["knn"]["test_acc"]}
        if "mlp" in result:
            s["mlp_acc"] = result["mlp"]["test_acc"]
        if "clustering" in result:
            s.update({"gmm_acc": result["clustering"]["acc"], "nmi": result["clustering"]["nmi"]})
            s["ari"] = result["clustering"]["ari"]
        return s
