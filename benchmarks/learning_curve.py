"""Where does each family plateau? Linear accuracy after 1, 2, 5, 10 and 20 epochs of one run per method.

    PROBSSL_DATA=../shared/data OMP_NUM_THREADS=2 python benchmarks/learning_curve.py             # MNIST
    PROBSSL_DATA=../shared/data OMP_NUM_THREADS=2 python benchmarks/learning_curve.py --dataset fashion-mnist

Issue #16's first step. Each method trains its ``METHOD-DATASET`` preset once for the largest epoch count (full
training split, the preset's own schedule stretched to that budget), keeping every epoch's checkpoint; then
``probssl eval RUN --checkpoint step-N --quick --ood`` (probes, geometry, information and uncertainty, no OOD
sets) scores the checkpoint at the end of each listed epoch. So the curve is read off *one* schedule: epoch 5
of a 20-epoch cosine run, not a 5-epoch run (whose learning rate would have decayed by then); the last point
is a full run. A method plateaus at the first listed epoch whose linear accuracy is within ``--plateau``
points (default 0.5) of the last one.

With ``--claims-runs DIR`` (e.g. ``runs/claims``), a method whose claims-suite run ``DIR/DATASET/METHOD/seedS``
is not yet finished (or was trained by a curve: it kept every epoch) trains *there*: same preset, seed and epochs
as ``benchmarks/claims.py``, so the same training, and the claims suite later only evaluates it. A claims run that
the suite finished kept only its last checkpoints, so the curve then trains its own run under ``--runs``.

Resumable: a finished run is not retrained and an evaluated checkpoint is not re-evaluated (its
``eval-epochE.json`` is kept beside the run), an interrupted run continues from its last checkpoint.
Outputs: ``--out`` (default ``benchmarks/results/learning-curve-DATASET``) ``.json`` and ``.md``.

``--report-only`` trains and evaluates nothing: it re-derives each curve's plateau epoch (with the JSON's own
``plateau_points``) and the Markdown from the existing ``--out`` JSON, e.g. after the plateau rule changed; the
JSON keeps the command and machine that measured it and records the re-deriving command as ``report_command``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "harness"))
from results import report_header, run_probssl, write_report  # noqa: E402

from probssl.train.logging import read_status  # noqa: E402

METHODS = ["simclr", "vsimclr", "simvae"]
EPOCHS = [1, 2, 5, 10, 20]


def train(preset: str, run: Path, epochs: int, seed: int, overrides: list[str]) -> float:
    """Train (or resume) ``preset`` for ``epochs`` keeping every epoch's checkpoint; the wall seconds spent."""
    if read_status(run)["status"] == "finished":
        return 0.0
    sets = [f"train.epochs={epochs}", f"train.seed={seed}", "train.checkpoint_every=1"]
    sets += [f"train.keep_checkpoints={epochs + 1}", "train.progress=false", *overrides]
    resume = ["--resume", "auto"] if run.exists() else []
    tic = time.perf_counter()
    run_probssl("train", "--preset", preset, "--out", str(run), *resume, *sum((["--set", s] for s in sets), []))
    return time.perf_counter() - tic


def last_step_of_each_epoch(run: Path, epochs: int) -> dict[int, int]:
    """{epoch (1-based): the step that ended it}: the run checkpoints every epoch and keeps them all, so its k-th
    checkpoint ended epoch k (training records are logged every ``train.log_every`` steps, not at epoch ends)."""
    steps = sorted(int(p.name.split("-")[1]) for p in (run / "checkpoints").glob("step-*"))
    status = json.loads((run / "status.json").read_text())
    if len(steps) != epochs or steps[-1] != status["step"]:
        sys.exit(f"{run}: expected {epochs} epoch checkpoints ending at step {status['step']}, found {steps}")
    return {k + 1: step for k, step in enumerate(steps)}


def evaluate(run: Path, epoch: int, step: int) -> dict:
    """eval.json of the checkpoint at ``step`` (cached as eval-epochE.json)."""
    cached = run / f"eval-epoch{epoch}.json"
    if not cached.exists():
        run_probssl("eval", str(run), "--checkpoint", f"step-{step:08d}", "--quick", "--ood")
        report = json.loads((run / "eval.json").read_text())
        if report.get("step") != step:
            sys.exit(f"{run}: eval.json names step {report.get('step')}, expected {step}")
        cached.write_text(json.dumps(report))
    return json.loads(cached.read_text())


def run_dir(method: str, args) -> Path:
    """Where ``method``'s curve trains: the claims suite's run when ``--claims-runs`` is given and that run has not
    finished or kept every epoch's checkpoint (a curve trained it), else this benchmark's own ``--runs`` folder (a
    run the claims suite finished kept only its last checkpoints)."""
    if args.claims_runs is not None:
        shared = args.claims_runs / args.dataset / method / f"seed{args.seed}"
        kept = len(list((shared / "checkpoints").glob("step-*")))
        if read_status(shared)["status"] != "finished" or kept >= max(args.epochs):
            return shared
    return args.runs / args.dataset / method


def curve(method: str, args) -> dict:
    preset = f"{method}-{args.dataset}"
    run = run_dir(method, args)
    train_s = train(preset, run, max(args.epochs), args.seed, args.set)
    ends = last_step_of_each_epoch(run, max(args.epochs))
    points = []
    for epoch in args.epochs:
        summary = evaluate(run, epoch, ends[epoch])["summary"]
        points.append({"epoch": epoch, "step": ends[epoch], "linear_acc": summary["linear_acc"]})
        print(f"{preset} epoch {epoch}: linear acc {summary['linear_acc']:.4f}", flush=True)
    plateau = plateau_epoch(points, args.plateau)
    return {
        "method": method,
        "preset": preset,
        "run": str(run),
        "train_s": round(train_s, 1),
        "points": points,
        "plateau_epoch": plateau,
    }


def plateau_epoch(points: list[dict], within: float) -> int | None:
    """The first listed epoch whose linear accuracy is within ``within`` points of the last one; None when only the
    last point is (it is within 0 points of itself by construction, so it shows no plateau: "not before")."""
    final = points[-1]["linear_acc"]
    first = next(p["epoch"] for p in points if 100 * (final - p["linear_acc"]) <= within)
    return None if first == points[-1]["epoch"] and len(points) > 1 else first


def markdown(report: dict) -> str:
    m = report["machine"]
    epochs = report["epochs"]
    lines = [
        f"Machine: {m['cpu_model']} (bf16: {'native' if m['cpu_bf16']['native_bf16'] else 'emulated'}), torch "
        f"{m['torch']}, {m['threads']} threads, {m['date']}. Command: `{report['command']}`. Dataset "
        f"{report['dataset']}, seed {report['seed']}, one run per method (full training split).",
        "",
        "| method | "
        + " | ".join(f"epoch {e}" for e in epochs)
        + f" | plateau (within {report['plateau_points']} points of epoch {epochs[-1]}) |",
        "| --- | " + " | ".join("---:" for _ in epochs) + " | ---: |",
    ]
    for c in report["curves"]:
        accs = " | ".join(f"{p['linear_acc']:.4f}" for p in c["points"])
        plateau = f"epoch {c['plateau_epoch']}" if c["plateau_epoch"] else f"not before epoch {epochs[-1]}"
        lines.append(f"| {c['preset']} | {accs} | {plateau} |")
    return "\n".join(lines) + "\n"


def rederive(out: Path) -> None:
    """Rewrite OUT.json's plateau epochs and OUT.md from OUT.json's own points (``--report-only``)."""
    path = out.with_suffix(".json")
    if not path.exists():
        sys.exit(f"{path}: no such report; --report-only re-derives an existing one (run without it first)")
    report = json.loads(path.read_text())
    for c in report["curves"]:
        c["plateau_epoch"] = plateau_epoch(c["points"], report["plateau_points"])
    report["report_command"] = "python benchmarks/learning_curve.py " + " ".join(sys.argv[1:])
    write_report(out, report, markdown)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument("--epochs", nargs="+", type=int, default=EPOCHS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plateau", type=float, default=0.5, help="points of linear accuracy")
    parser.add_argument("--runs", type=Path, default=HERE.parent / "runs" / "learning-curve")
    parser.add_argument(
        "--claims-runs", type=Path, default=None, help="share unfinished runs with claims.py's --runs (runs/claims)"
    )
    parser.add_argument("--set", action="append", default=[], help="config override for every run")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--report-only", action="store_true", help="re-derive plateaus and Markdown from --out's JSON")
    args = parser.parse_args()
    args.epochs = sorted(set(args.epochs))
    out = args.out or HERE / "results" / f"learning-curve-{args.dataset}"
    if args.report_only:
        return rederive(out)
    load = [round(x, 2) for x in os.getloadavg()]
    curves = [curve(method, args) for method in args.methods]
    report = {
        **report_header("learning_curve.py", load),
        "dataset": args.dataset,
        "seed": args.seed,
        "epochs": args.epochs,
        "overrides": args.set,
        "plateau_points": args.plateau,
        "curves": curves,
    }
    write_report(out, report, markdown)


if __name__ == "__main__":
    main()
