"""Does bf16 change what a run learns? Linear accuracy of the same runs trained in float32 and in bf16 autocast.

    OMP_NUM_THREADS=2 python benchmarks/precision_accuracy.py                   # digits demo + 2-epoch MNIST
    OMP_NUM_THREADS=2 python benchmarks/precision_accuracy.py --cases digits    # the digits demo only (~1 min)

Each case trains its presets twice from the same seed, ``train.precision=fp32`` and ``train.precision=bf16``
(everything else equal, ``probssl train`` then ``probssl eval``; eval extracts features in the run's training
precision and fits the probes in float32), and reports the test linear accuracy of both and their difference.
Issue #11's target: |bf16 - fp32| <= 0.3 points. As a yardstick each preset also trains in fp32 from the next
seed: the difference between two fp32 seeds is what the same recipe varies by anyway. Cases: ``digits`` = the ``probssl demo`` presets at their
default budget; ``mnist`` = ``simclr-mnist`` and ``vsimclr-mnist`` for 2 epochs on the full training split.
Where bf16 is emulated (a CPU without bf16 units) the bf16 runs are slow but still a correct measurement.
Results: ``--out`` (default ``benchmarks/results/precision-accuracy``) ``.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "harness"))
from results import report_header, run_probssl, write_report  # noqa: E402

CASES = {
    "digits": (["simclr-digits", "vsimclr-digits"], []),
    "mnist": (["simclr-mnist", "vsimclr-mnist"], ["train.epochs=2"]),
}
PRECISIONS = ("fp32", "bf16")
TARGET_POINTS = 0.3
EVAL_SKIP = ["--skip", "embedding_map", "--skip", "images", "--skip", "mlp"]  # only the linear probe is compared


def train_and_eval(preset: str, precision: str, overrides: list[str], runs: Path, seed: int) -> dict:
    run = runs / f"{preset}-{precision}"
    sets = [f"train.precision={precision}", f"train.seed={seed}", "train.progress=false", *overrides]
    tic = time.perf_counter()
    run_probssl("train", "--preset", preset, "--out", str(run), *sum((["--set", s] for s in sets), []))
    train_s = time.perf_counter() - tic
    run_probssl("eval", str(run), "--ood", "noise", *EVAL_SKIP)
    summary = json.loads((run / "eval.json").read_text())["summary"]
    status = json.loads((run / "status.json").read_text())
    return {
        "linear_acc": summary["linear_acc"],
        "precision_used": status.get("precision"),
        "precision_reason": status.get("precision_reason"),
        "train_s": round(train_s, 1),
    }


def measure(case: str, runs: Path, seed: int) -> list[dict]:
    presets, overrides = CASES[case]
    rows = []
    for preset in presets:
        by = {p: train_and_eval(preset, p, overrides, runs, seed) for p in PRECISIONS}
        # The yardstick: the same fp32 run from the next seed. A bf16 difference of that size is seed noise.
        other = train_and_eval(preset, "fp32", overrides, runs / "other-seed", seed + 1)
        diff = 100 * (by["bf16"]["linear_acc"] - by["fp32"]["linear_acc"])
        rows.append(
            {
                "case": case,
                "preset": preset,
                "overrides": overrides,
                "seed": seed,
                **{p: by[p] for p in PRECISIONS},
                "diff_points": round(diff, 2),
                "fp32_next_seed": other,
                "seed_diff_points": round(100 * (other["linear_acc"] - by["fp32"]["linear_acc"]), 2),
                "met": abs(diff) <= TARGET_POINTS,
            }
        )
        print(f"{case} {preset}: fp32 {by['fp32']['linear_acc']:.4f}  bf16 {by['bf16']['linear_acc']:.4f}", flush=True)
    return rows


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        f"Machine: {m['cpu_model']} (bf16 flags: {', '.join(m['cpu_bf16']['flags']) or 'none'}; "
        f"{'native' if m['cpu_bf16']['native_bf16'] else 'emulated'}), "
        f"torch {m['torch']}, {m['threads']} threads, {m['date']}. Command: `{report['command']}`.",
        "",
        "| case | preset | fp32 linear acc | bf16 linear acc | bf16 - fp32 (points) | train s fp32 / bf16 | "
        f"within {TARGET_POINTS} points | fp32, next seed - fp32 (points) |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['case']} | {r['preset']} {' '.join(r['overrides'])} | {r['fp32']['linear_acc']:.4f} | "
            f"{r['bf16']['linear_acc']:.4f} | {r['diff_points']:+.2f} | {r['fp32']['train_s']} / {r['bf16']['train_s']} | "
            f"{'yes' if r['met'] else 'NO'} | {r['seed_diff_points']:+.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override for every run")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "precision-accuracy")
    args = parser.parse_args()
    for case in args.cases:
        CASES[case] = (CASES[case][0], CASES[case][1] + args.overrides)
    load = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="precision-accuracy-") as tmp:
        rows = [r for case in args.cases for r in measure(case, Path(tmp), args.seed)]
    report = {**report_header("precision_accuracy.py", load), "target_points": TARGET_POINTS, "rows": rows}
    write_report(args.out, report, markdown)


if __name__ == "__main__":
    main()
