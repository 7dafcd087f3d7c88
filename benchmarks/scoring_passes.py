"""What scoring an image costs: the evaluation's Scorer (one network pass per batch) against the per-score path it
replaced (each group of scores asked of the method on its own: posterior scores, extra scores, representation,
backbone features -- five passes for a probabilistic method with an epistemic head and the density score).

    OMP_NUM_THREADS=1 python benchmarks/scoring_passes.py                     # convnet (MNIST) and ResNet-18 (CIFAR)
    OMP_NUM_THREADS=1 python benchmarks/scoring_passes.py --backbones convnet --images 64 --repeats 1

For each backbone: VSimCLR at random initialisation (the cost does not depend on the weights) with the epistemic
head fitted on random images, a Scorer with every score (posterior family, mc_dispersion, epistemic, combined,
kNN distance, density), evaluated in each ``--precisions``. The two paths run alternately ``--repeats`` times in
one process on the same images; reported: the median seconds of each, their ratio, the images the backbone saw
per image scored (a forward hook counts them), and the largest difference between the two paths' scores.
Results: ``--out`` (default ``benchmarks/results/scoring-passes``) ``.json`` and ``.md``, with the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "harness"))
from results import report_header, write_report  # noqa: E402

from probssl.config import load_config  # noqa: E402
from probssl.data import to_float_images  # noqa: E402
from probssl.evaluation import EvalOptions, extract  # noqa: E402
from probssl.evaluation.scoring import Scorer, dispersion  # noqa: E402
from probssl.evaluation.uncertainty import knn_distance_score  # noqa: E402
from probssl.methods import create_method  # noqa: E402

BACKBONES = {"convnet": ("vsimclr-mnist", (1, 28, 28)), "resnet18-cifar": ("vsimclr-cifar10", (3, 32, 32))}


def per_score_path(scorer: Scorer, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """The scores as the Scorer made them before its passes were shared (probssl at aab2c6a, with a representation
    'auto' that resolves to the backbone): the posterior's scores and mc_dispersion; the epistemic score, whose
    ``combined`` made the posterior again; the representation; the backbone features: five passes."""
    method, o = scorer.method, scorer.opts
    out: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(o.seed)
        step = max(1, o.batch_size // 4)
        for i in range(0, len(images), step):
            q = method.posterior(to_float_images(images[i : i + step]))
            for kind in method.posterior_class.uncertainty_kinds():
                out.setdefault(kind, []).append(q.uncertainty(kind).float())
            out.setdefault("mc_dispersion", []).append(dispersion(q, o.mc_samples))
        for i in range(0, len(images), o.batch_size):
            x = to_float_images(images[i : i + o.batch_size])
            density = method.feature_density.distance(method.forward_features(x))
            aleatoric = method.posterior(x).uncertainty(method.aleatoric_kind()).float()  # combined's own pass
            out.setdefault("epistemic", []).append(density.float())
            out.setdefault("combined", []).append(method.feature_density.combined(aleatoric, density).float())
    scores = {k: torch.cat(v) for k, v in out.items()}
    feats = extract(method, images, scorer.kind, o.batch_size, "cpu", o.precision)
    scores["knn_distance"] = knn_distance_score(scorer.train_x, feats, k=o.knn_score_k)
    backbone = extract(method, images, "backbone", o.batch_size, "cpu", o.precision)
    scores["density"] = scorer.density.score(backbone).float()
    return scores


def setup(backbone: str, precision: str, n_images: int) -> tuple[Scorer, torch.Tensor]:
    preset, shape = BACKBONES[backbone]
    torch.manual_seed(0)
    method = create_method(load_config(preset, overrides=["method.epistemic=true"]), shape).eval()
    g = torch.Generator().manual_seed(0)
    train = torch.randint(0, 256, (2 * n_images, *shape), dtype=torch.uint8, generator=g)
    method.on_train_end(train, batch_size=256)
    # the scores in float32 as before, so that both paths make the same numbers (score_precision.py measures "same")
    opts = EvalOptions(batch_size=256, mc_samples=32, precision=precision, score_precision="fp32")
    train_x = extract(method, train, "auto", opts.batch_size, "cpu", precision)
    backbone_x = extract(method, train, "backbone", opts.batch_size, "cpu", precision)
    labels = torch.arange(len(train)) % 10
    scorer = Scorer(method, "auto", train_x, opts, "cpu", train_backbone=backbone_x, train_labels=labels)
    return scorer, torch.randint(0, 256, (n_images, *shape), dtype=torch.uint8, generator=g)


def timed(fn, scorer: Scorer, images: torch.Tensor, seen: list[int]) -> tuple[float, int, dict]:
    seen.clear()
    tic = time.perf_counter()
    scores = fn(images)
    return time.perf_counter() - tic, sum(seen), scores


def measure(backbone: str, precision: str, n_images: int, repeats: int) -> dict:
    scorer, images = setup(backbone, precision, n_images)
    seen: list[int] = []
    scorer.method.backbone.register_forward_hook(lambda _m, inputs, _o: seen.append(len(inputs[0])))
    paths = {"one_pass": scorer.all, "per_score": lambda x: per_score_path(scorer, x)}
    seconds: dict[str, list[float]] = {name: [] for name in paths}
    passes, scores = {}, {}
    for _ in range(repeats):
        for name, fn in paths.items():  # alternately, so drift in the machine's speed reaches both
            s, n, scores[name] = timed(fn, scorer, images, seen)
            seconds[name].append(s)
            passes[name] = n / n_images
    diff = max(float((scores["one_pass"][k] - v).abs().max()) for k, v in scores["per_score"].items())
    median = {name: statistics.median(v) for name, v in seconds.items()}
    return {
        "backbone": backbone,
        "precision": precision,
        "images": n_images,
        "repeats": repeats,
        "seconds": seconds,
        "median_s": median,
        "speedup": median["per_score"] / median["one_pass"],
        "backbone_images_per_image": passes,
        "max_abs_score_difference": diff,
        "scores": sorted(scores["one_pass"]),
    }


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# Scoring passes: the Scorer's shared pass against one pass per group of scores",
        "",
        f"Command: `{report['command']}`. Machine: {m.get('cpu_model')}, {m.get('threads')} thread(s), "
        f"torch {m.get('torch')}, {m.get('date')}.",
        "",
        "| backbone | precision | images | one pass (s) | per score (s) | speed-up | backbone images per image "
        "(one pass / per score) | max score difference |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in report["rows"]:
        p = r["backbone_images_per_image"]
        lines.append(
            f"| {r['backbone']} | {r['precision']} | {r['images']} | {r['median_s']['one_pass']:.2f} | "
            f"{r['median_s']['per_score']:.2f} | {r['speedup']:.2f}x | {p['one_pass']:g} / {p['per_score']:g} | "
            f"{r['max_abs_score_difference']:.2g} |"
        )
    lines += ["", f"Scores: {', '.join(report['rows'][0]['scores'])} (medians of the repeats).", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=list(BACKBONES))
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/scoring-passes"))
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    load = [round(x, 2) for x in os.getloadavg()]
    rows = [measure(b, p, args.images, args.repeats) for b in args.backbones for p in args.precisions]
    write_report(args.out, {**report_header("scoring_passes.py", load), "rows": rows}, markdown)


if __name__ == "__main__":
    main()
