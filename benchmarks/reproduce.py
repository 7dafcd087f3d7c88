"""Check the papers' claims on real data: every method x seeds on one dataset, evaluated and judged.

    python benchmarks/reproduce.py --dataset mnist           # then: --dataset fashion-mnist
    python benchmarks/reproduce.py --dataset digits --seeds 0 --methods simclr vsimclr --epochs-contrastive 2 \
        --epochs-generative 1       # a smoke run of the machinery (seconds)

Runs are resumable: a run whose eval.json exists is skipped, an interrupted one continues from its last
checkpoint, so the suite can run in the background (nohup) across sessions. Outputs:
  runs/reproduce/DATASET/METHOD/seedS/        each run (checkpoints, metrics.jsonl, eval.json)
  reports/reproduce-DATASET/                  `probssl report` over all runs (tables with mean +- s.e., plots)
  benchmarks/results/reproduce-DATASET.json   per-method mean +- s.e. of every headline number, and verdicts
  benchmarks/results/reproduce-DATASET.md     the claims, one by one, with the numbers that decide them
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTRASTIVE = ["simclr", "vsimclr", "supcon", "vsupcon", "scl-gaussian", "scl-bernoulli", "vicreg"]
GENERATIVE = ["simvae", "vae", "beta-vae", "cr-vae"]
OOD = {"mnist": "fashion-mnist", "fashion-mnist": "mnist", "digits": "noise"}
SCL_BITS_MARGIN = 0.02


def run(cmd: list[str], log: Path, threads: int | None = None) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {}))
    with open(log, "a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env)


def train_and_eval(method: str, dataset: str, seed: int, args) -> Path:
    out = args.runs / dataset / method / f"seed{seed}"
    if (out / "eval.json").exists():
        return out
    epochs = args.epochs_contrastive if method in CONTRASTIVE else args.epochs_generative
    overrides = [f"train.seed={seed}", f"train.epochs={epochs}", "train.progress=false", *args.set]
    if args.threads:
        overrides.append(f"train.num_threads={args.threads}")
    if args.train_subset:
        overrides.append(f"data.train_subset={args.train_subset}")
    if args.data_dir:
        overrides.append(f"data.data_dir={args.data_dir}")
    sets = sum((["--set", o] for o in overrides), [])
    tic = time.time()
    run(
        [
            sys.executable,
            "-m",
            "probssl",
            "train",
            "--preset",
            f"{method}-{dataset}",
            "--out",
            str(out),
            "--resume",
            "auto",
            *sets,
        ],
        out.parent / f"seed{seed}.log",
        args.threads,
    )
    run(
        [sys.executable, "-m", "probssl", "eval", str(out), "--ood", OOD[dataset], *args.eval_args.split()],
        out.parent / f"seed{seed}.log",
        args.threads,
    )
    print(f"  {method} seed {seed}: {time.time() - tic:.0f} s", flush=True)
    return out


def mean_se(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return float("nan"), float("nan")
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, float("nan")
    var = sum((v - m) ** 2 for v in values) / (len(values) - 1)
    return m, math.sqrt(var / len(values))


def aggregate(runs: dict[str, list[Path]]) -> dict[str, dict[str, tuple[float, float]]]:
    """method -> metric -> (mean, standard error) over seeds, from each eval.json's summary and scores."""
    table: dict[str, dict[str, tuple[float, float]]] = {}
    for method, dirs in runs.items():
        per_seed = []
        for d in dirs:
            e = json.loads((d / "eval.json").read_text())
            row = {k: v for k, v in e["summary"].items() if isinstance(v, (int, float))}
            scores = e.get("uncertainty", {}).get("scores", {})
            for name, s in scores.items():  # every score, so the posterior can be set against kNN distance
                row[f"{name}/misclassification_auroc"] = s["misclassification"]["auroc"]
                for ood, r in s.get("ood", {}).items():
                    row[f"{name}/ood_auroc/{ood}"] = r["auroc"]
            per_seed.append(row)
        keys = sorted(set().union(*per_seed))
        table[method] = {k: mean_se([r.get(k) for r in per_seed]) for k in keys}
    return table


def fmt(pair: tuple[float, float]) -> str:
    m, se = pair
    return "n/a" if math.isnan(m) else (f"{m:.4f}" if math.isnan(se) else f"{m:.4f} ± {se:.4f}")


def judge(table, dataset: str) -> list[dict]:
    """Each claim: the numbers that decide it and whether they support it (mean difference > 0)."""
    ood = OOD[dataset]
    verdicts = []

    def claim(text, left, right, key, left_key=None):
        a, b = table.get(left, {}).get(left_key or key), table.get(right, {}).get(key)
        if a is None or b is None:
            verdicts.append({"claim": text, "verdict": "not measured", "numbers": {}})
            return
        diff = a[0] - b[0]
        se = math.sqrt((0 if math.isnan(a[1]) else a[1]) ** 2 + (0 if math.isnan(b[1]) else b[1]) ** 2)
        supported = diff > 0
        strength = "" if se == 0 else (" (within 2 s.e.)" if abs(diff) < 2 * se else "")
        verdicts.append(
            {
                "claim": text,
                "verdict": ("supported" if supported else "not supported") + strength,
                "numbers": {
                    f"{left}:{left_key or key}": fmt(a),
                    f"{right}:{key}": fmt(b),
                    "difference": f"{diff:+.4f}",
                },
            }
        )

    for v, d in (("vsimclr", "simclr"), ("vsupcon", "supcon")):
        claim(f"{v} linear accuracy >= {d}", v, d, "linear_acc")
        claim(f"{v} effective rank (embedding) > {d} (less dimensional collapse)", v, d, "embedding_effective_rank")
        claim(f"{v} I(Z;Y) (classifier bound, bits) > {d}", v, d, "mi_lb_bits")
        claim(
            f"{v} posterior uncertainty detects OOD ({ood}) better than {d}'s kNN-distance score",
            v,
            d,
            f"knn_distance/ood_auroc/{ood}",
            left_key=f"posterior/ood_auroc/{ood}",
        )
        claim(
            f"{v} posterior uncertainty detects errors better than {d}'s kNN-distance score",
            v,
            d,
            "knn_distance/misclassification_auroc",
            left_key="posterior/misclassification_auroc",
        )
    # SCL's claim is usefulness at a compression rate, not superiority: binary codes count as keeping
    # the content when their linear accuracy is within SCL_BITS_MARGIN of SimCLR's float features.
    bits, ref = table.get("scl-bernoulli", {}), table.get("simclr", {})
    if "linear_acc" in bits and "linear_acc" in ref:
        gap = bits["linear_acc"][0] - ref["linear_acc"][0]
        ratio = bits.get("compression_ratio", (float("nan"),))[0]
        verdicts.append(
            {
                "claim": f"scl-bernoulli bits keep simclr's linear accuracy (within {SCL_BITS_MARGIN:.2f}) at a "
                f"{ratio:.0f}x compression of the image",
                "verdict": "supported" if gap >= -SCL_BITS_MARGIN else "not supported",
                "numbers": {
                    "scl-bernoulli:linear_acc": fmt(bits["linear_acc"]),
                    "simclr:linear_acc": fmt(ref["linear_acc"]),
                    "difference": f"{gap:+.4f}",
                    "scl-bernoulli:compression_ratio": fmt(bits.get("compression_ratio", (float("nan"),) * 2)),
                    "simclr:compression_ratio": fmt(ref.get("compression_ratio", (float("nan"),) * 2)),
                },
            }
        )
    for other in ("vae", "beta-vae", "cr-vae"):
        claim(f"simvae content (linear accuracy) > {other}", "simvae", other, "linear_acc")
    style_keys = sorted({k for m in table.values() for k in m if k.startswith("style_acc/")})
    for key in style_keys:
        claim(f"simvae keeps more style than simclr: {key}", "simvae", "simclr", key)
    return verdicts


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, choices=sorted(OOD))
    p.add_argument("--methods", nargs="+", default=CONTRASTIVE + GENERATIVE)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs-contrastive", type=int, default=4)
    p.add_argument("--epochs-generative", type=int, default=2)
    p.add_argument("--train-subset", type=int, default=None, help="cap on training images (also for the probes)")
    p.add_argument("--eval-args", default="", help="extra `probssl eval` flags, e.g. '--quick'")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra config override for every training run (repeatable)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads per process (train.num_threads and OMP_NUM_THREADS for eval); 1 when two "
        "suites share the 2 cores",
    )
    p.add_argument("--data-dir", default=os.environ.get("PROBSSL_DATA"))
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "reproduce")
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--reports", type=Path, default=ROOT / "reports")
    args = p.parse_args()

    tic = time.time()
    print(f"[reproduce] {args.dataset}: {len(args.methods)} methods x {len(args.seeds)} seeds", flush=True)
    runs: dict[str, list[Path]] = {m: [] for m in args.methods}
    for seed in args.seeds:  # seed-major: a suite stopped early still covers every method
        for m in args.methods:
            runs[m].append(train_and_eval(m, args.dataset, seed, args))
    elapsed = time.time() - tic
    all_dirs = [str(d) for dirs in runs.values() for d in dirs]
    report_dir = args.reports / f"reproduce-{args.dataset}"
    run(
        [
            sys.executable,
            "-m",
            "probssl",
            "report",
            *all_dirs,
            "--out",
            str(report_dir),
            "--title",
            f"Reproduction on {args.dataset}",
        ],
        report_dir.parent / f"reproduce-{args.dataset}.log",
    )

    table = aggregate(runs)
    verdicts = judge(table, args.dataset)
    args.results.mkdir(parents=True, exist_ok=True)
    payload = {
        "dataset": args.dataset,
        "seeds": args.seeds,
        "methods": args.methods,
        "budget": {
            "epochs_contrastive": args.epochs_contrastive,
            "epochs_generative": args.epochs_generative,
            "train_subset": args.train_subset,
            "eval_args": args.eval_args,
            "set": args.set,
            "threads": args.threads,
        },
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "date": time.strftime("%Y-%m-%d"),
        "suite_seconds": round(elapsed, 1),
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "table": {m: {k: list(v) for k, v in rows.items()} for m, rows in table.items()},
        "claims": verdicts,
    }
    (args.results / f"reproduce-{args.dataset}.json").write_text(json.dumps(payload, indent=1))

    headline = [
        "linear_acc",
        "knn_acc",
        "embedding_effective_rank",
        "mi_lb_bits",
        "misclassification_auroc",
        f"ood_auroc/{OOD[args.dataset]}",
        "compression_ratio",
    ]
    lines = [
        f"## Reproduction on {args.dataset}",
        "",
        f"`python benchmarks/{payload['command']}` — {payload['date']}, {payload['machine']['platform']}, "
        f"{payload['machine']['cpus']} CPUs, {elapsed / 60:.1f} min. Budget: {payload['budget']}. "
        f"Mean ± standard error over seeds {args.seeds}. Raw numbers: `benchmarks/results/reproduce-{args.dataset}.json`.",
        "",
        "| method | " + " | ".join(headline) + " |",
        "|---|" + "---|" * len(headline),
    ]
    for m, rows in table.items():
        lines.append(f"| {m} | " + " | ".join(fmt(rows[k]) if k in rows else "–" for k in headline) + " |")
    ood = OOD[args.dataset]
    lines += [
        "",
        f"Uncertainty scores (AUROC; OOD = {ood}; higher is better):",
        "",
        "| method | score | OOD AUROC | misclassification AUROC |",
        "|---|---|---|---|",
    ]
    for m, rows in table.items():
        for score in sorted({k.split("/")[0] for k in rows if k.endswith("/misclassification_auroc")}):
            lines.append(
                f"| {m} | {score} | {fmt(rows.get(f'{score}/ood_auroc/{ood}', (math.nan, math.nan)))} | "
                f"{fmt(rows[f'{score}/misclassification_auroc'])} |"
            )
    style = sorted({k for rows in table.values() for k in rows if k.startswith("style_acc/")})
    if style:
        lines += [
            "",
            "Content and style probes (accuracy):",
            "",
            "| method | content_acc | " + " | ".join(style) + " |",
            "|---|---|" + "---|" * len(style),
        ]
        for m, rows in table.items():
            lines.append(
                f"| {m} | " + " | ".join(fmt(rows[k]) if k in rows else "–" for k in ["content_acc", *style]) + " |"
            )
    lines += ["", "| claim | verdict | numbers |", "|---|---|---|"]
    for v in verdicts:
        lines.append(
            f"| {v['claim']} | {v['verdict']} | " + "; ".join(f"{k} {x}" for k, x in v["numbers"].items()) + " |"
        )
    (args.results / f"reproduce-{args.dataset}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
