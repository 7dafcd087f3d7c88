"""What the online monitors (``train.monitor_every``) cost, as a share of the training time.

    OMP_NUM_THREADS=2 python benchmarks/monitor_cost.py                       # digits presets, 2 rounds
    OMP_NUM_THREADS=2 python benchmarks/monitor_cost.py --presets simclr-mnist --set data.train_subset=6000
    python benchmarks/monitor_cost.py --runs runs/claims/mnist/*/seed0     # read finished runs' own logs

For each preset, trains with the monitors every epoch and *no* budget (``train.monitor_budget=null``: every
epoch measured at the full subset, the worst case), with the default budget (``train.monitor_budget: 0.05``:
the subset shrinks until a measurement fits 5 % of an epoch's training; see ``probssl.evaluation.monitors``) and
without monitors, alternately for ``--rounds`` rounds, and reports per preset: the seconds the monitors spent
(the callback's own clock), the training seconds (fit time minus that), their ratio, the epochs that logged the
monitor keys, the reference-subset size at the end, and the wall-time ratio of the monitored run to the
unmonitored one. Results: ``--out`` (default ``benchmarks/results/monitor-cost``) ``.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "harness"))
from results import report_header, write_report  # noqa: E402

from probssl.config import load_config  # noqa: E402
from probssl.evaluation.monitors import OnlineMonitor  # noqa: E402
from probssl.train import MetricsLog, Trainer  # noqa: E402


def one_run(preset: str, overrides: list[str], mode: str, run: Path) -> dict:
    """mode: "uncapped" (monitors every epoch, no budget), "default" (every epoch, the default 5 % budget), "off"."""
    every = "train.monitor_every=0" if mode == "off" else "train.monitor_every=1"
    budget = ["train.monitor_budget=null"] if mode == "uncapped" else []
    base = ["train.progress=false", "train.tensorboard=false", every, *budget]
    trainer = Trainer(load_config(preset, overrides=[*base, *overrides]), run, echo=lambda _m: None)
    tic = time.perf_counter()
    trainer.fit()
    wall = time.perf_counter() - tic
    monitors = [c for c in trainer.callbacks if isinstance(c, OnlineMonitor)]
    spent = monitors[0].spent if monitors else 0.0
    logged = sorted({r["epoch"] for r in MetricsLog(run / "metrics.jsonl").read() if "monitor/effective_rank" in r})
    size = monitors[0].size if monitors else 0
    return {"wall_s": wall, "monitor_s": spent, "epochs": trainer.epoch, "monitored_epochs": logged, "samples": size}


def measure(preset: str, overrides: list[str], rounds: int) -> dict:
    runs: dict[str, list[dict]] = {"uncapped": [], "default": [], "off": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            order = list(runs) if r % 2 == 0 else list(runs)[::-1]  # alternate the order: drift hits all alike
            for mode in order:
                runs[mode].append(one_run(preset, overrides, mode, Path(tmp) / f"{r}-{mode}"))
    off_wall = statistics.median(x["wall_s"] for x in runs["off"])
    row = {"preset": preset, "overrides": overrides, "epochs": runs["off"][0]["epochs"], "rounds": rounds}
    for mode in ("uncapped", "default"):
        monitor_s = statistics.median(x["monitor_s"] for x in runs[mode])
        train_s = statistics.median(x["wall_s"] - x["monitor_s"] for x in runs[mode])
        row[mode] = {
            "monitor_s": round(monitor_s, 2),
            "train_s": round(train_s, 2),
            "monitor_share": round(monitor_s / train_s, 4),
            "wall_ratio_to_off": round(statistics.median(x["wall_s"] for x in runs[mode]) / off_wall, 3),
            "monitored_epochs": [len(x["monitored_epochs"]) for x in runs[mode]],  # per round
            "final_samples": [x["samples"] for x in runs[mode]],
        }
    return row


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# Online monitors: their share of the training time",
        "",
        f"`{report['command']}` -- {m['date']}, {m['cpu_model']}, {m['cores']} cores, torch {m['torch']}; "
        f"load before {m['load_before']['load_1_5_15']}, after {m['load_after']}.",
        "",
        "| preset | overrides | epochs | budget | epochs monitored (per round) | reference images at the end | "
        "monitor s | training s | monitors / training | wall / no monitors |",
        "| --- | --- | ---: | --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in report["rows"]:
        for mode, label in (("uncapped", "none (every epoch)"), ("default", "default 5 %")):
            c = r[mode]
            lines.append(
                f"| {r['preset']} | {' '.join(r['overrides']) or '-'} | {r['epochs']} | {label} | "
                f"{', '.join(map(str, c['monitored_epochs']))} | {', '.join(map(str, c['final_samples']))} | "
                f"{c['monitor_s']} | {c['train_s']} | {c['monitor_share']:.1%} | {c['wall_ratio_to_off']} |"
            )
    lines += [
        "",
        "Monitors every epoch, with no budget (the worst case: the full subset every epoch) and with the default "
        "`train.monitor_budget: 0.05`, which shrinks the subset (a prefix of the same seeded one, never below "
        "`MIN_SAMPLES`) until a measurement fits 5 % of an epoch's training, and skips epochs only at the minimum "
        "size. Wall-time ratios include start-up and are noisy on a shared machine.",
        "",
    ]
    return "\n".join(lines)


def share_in_runs(runs: list[Path]) -> list[str]:
    """The monitors' share of finished runs, read off their own logs (``monitor/seconds_total``, logged since
    2026-12-07): monitor seconds / (first-to-last record time - monitor seconds). One line per run."""
    lines = []
    for run in runs:
        records = MetricsLog(run / "metrics.jsonl").read()
        monitored = [r for r in records if "monitor/seconds_total" in r]
        if not monitored:
            why = "trained by a probssl that did not log it yet, or without monitors"
            lines.append(f"{run}: no monitor/seconds_total in its log ({why})")
            continue
        spent, span = monitored[-1]["monitor/seconds_total"], records[-1]["time"] - records[0]["time"]
        lines.append(
            f"{run}: {len(monitored)} measurements, {spent:.1f} s of monitors in {span:.0f} s from first to last "
            f"record: {spent / max(span - spent, 1e-9):.2%} of training; {monitored[-1]['monitor/samples']} references"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", type=Path, help="only read these finished runs' logs (trains nothing)")
    parser.add_argument("--presets", nargs="+", default=["simclr-digits", "vsimclr-digits"])
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override for every run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/monitor-cost"))
    args = parser.parse_args()
    if args.runs:
        print("\n".join(share_in_runs(args.runs)))
        return
    load = [round(x, 2) for x in os.getloadavg()]
    rows = [measure(p, args.overrides, args.rounds) for p in args.presets]
    write_report(args.out, {**report_header("monitor_cost.py", load), "rows": rows}, markdown)


if __name__ == "__main__":
    main()
