"""Does making the uncertainty scores from a bf16 backbone pass change what they say? ``EvalOptions.score_precision``:
"fp32" (the scores' backbone pass without autocast, probssl's default before 2026-12-08) against "same" (under
the evaluation precision, here bf16: one pass for every score instead of two; the default since).

    PROBSSL_DATA=../shared/data OMP_NUM_THREADS=1 python benchmarks/score_precision.py --runs runs/claims/*/*/seed1

Each finished run is evaluated twice in one process, the same way but for ``score_precision`` (quick mode: the
linear probe for the errors, OOD against uniform noise and the other dataset of MNIST / Fashion-MNIST, 1,000
images each; features in ``--precision``). For every score and set: the OOD AUROC and the misclassification AUROC
each way and their difference; per run the uncertainty section's seconds each way, and why the scores' posterior
head runs in float32 even then: how many distinct values the posterior's first score (e.g. ``log_det_cov``)
takes on 1,000 test images when the head runs under the autocast too, against in float32 on the same features. Results: ``--out`` (default
``benchmarks/results/score-precision``) ``.json`` and ``.md``, with the machine.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "harness"))
from results import report_header, write_report  # noqa: E402

from probssl.data import load_splits  # noqa: E402
from probssl.evaluation import EvalOptions, evaluate_method  # noqa: E402
from probssl.train import autocast, load_run  # noqa: E402

OTHER = {"mnist": "fashion-mnist", "fashion-mnist": "mnist"}
QUICK = dict(clustering=False, information=False, alignment=False, ood_max_images=1000, mc_samples=16)


def aurocs(metrics: dict) -> dict[str, float]:
    """{"score / set": AUROC} of every score: each OOD set, and "errors" for misclassification."""
    out = {}
    for name, s in metrics["uncertainty"]["scores"].items():
        out[f"{name} / errors"] = s["misclassification"]["auroc"]
        out.update({f"{name} / {ood}": r["auroc"] for ood, r in s["ood"].items()})
    return out


def distinct_scores(method, images: torch.Tensor, precision: str) -> dict[str, int] | None:
    """How many distinct values the posterior family's first score takes on ``images``, with the posterior's head
    under ``precision``'s autocast and in float32 on the same features; None for a point mass."""
    if not method.probabilistic:
        return None
    kind = method.posterior_class.uncertainty_kinds()[0]
    x = method.check_images(images)
    with torch.no_grad():
        with autocast(torch.device("cpu"), precision):
            features, q_autocast = method.features_and_posterior(x)
        q_float32 = method.posterior_from_features(features.float())
    return {
        "score": kind,
        "head_autocast": int(q_autocast.uncertainty(kind).unique().numel()),
        "head_float32": int(q_float32.uncertainty(kind).unique().numel()),
        "images": len(images),
    }


def measure(run: Path, precision: str) -> dict:
    config, method, _ = load_run(run)
    splits = load_splits(config.data)
    ood = ("noise", OTHER[config.data.name]) if config.data.name in OTHER else ("noise",)
    results = {}
    for way in ("fp32", "same"):
        opts = EvalOptions.quick(precision=precision, score_precision=way, ood=ood, **QUICK)
        results[way] = evaluate_method(method, splits, opts, config=config)
    a, b = aurocs(results["fp32"]), aurocs(results["same"])
    diffs = {k: b[k] - a[k] for k in a}
    worst = max(diffs, key=lambda k: abs(diffs[k]))
    return {
        "run": str(run),
        "method": config.method.name,
        "dataset": config.data.name,
        "precision": precision,
        "auroc_fp32": a,
        "auroc_same": b,
        "difference": diffs,
        "max_abs_difference": abs(diffs[worst]),
        "worst": worst,
        "uncertainty_s": {way: r["timing"]["uncertainty"] for way, r in results.items()},
        "distinct_values": distinct_scores(method, splits.test.images[:1000], precision),
    }


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# Uncertainty scores made in bf16 against float32 (`EvalOptions.score_precision`)",
        "",
        f"Command: `{report['command']}`. Machine: {m.get('cpu_model')}, {m.get('threads')} thread(s), "
        f"torch {m.get('torch')}, {m.get('date')}.",
        "",
        "| run | scores x sets | largest AUROC difference (same - fp32) | at | uncertainty s fp32 / same | distinct "
        "values of a posterior score, head in bf16 / float32 |",
        "| --- | ---: | ---: | --- | ---: | ---: |",
    ]
    for r in report["rows"]:
        t, d = r["uncertainty_s"], r["distinct_values"]
        distinct = f"{d['score']}: {d['head_autocast']} / {d['head_float32']} of {d['images']}" if d else "-"
        lines.append(
            f"| {r['method']} {r['dataset']} (`{r['run']}`) | {len(r['difference'])} | "
            f"{r['difference'][r['worst']]:+.4f} | {r['worst']} | {t['fp32']:.1f} / {t['same']:.1f} | {distinct} |"
        )
    worst = max((r["max_abs_difference"] for r in report["rows"]), default=0.0)
    lines += ["", f"Largest |difference| over every run, score and set: {worst:.4f}.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", type=Path, required=True, help="finished runs (their checkpoints)")
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp16"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/score-precision"))
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    load = [round(x, 2) for x in os.getloadavg()]
    rows = [measure(run, args.precision) for run in args.runs]
    write_report(args.out, {**report_header("score_precision.py", load), "rows": rows}, markdown)


if __name__ == "__main__":
    main()
