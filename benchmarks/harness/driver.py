"""The parent side of a throughput run: rows in fresh processes, rounds, retries of contended rows,
and the report."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from harness import machine
from harness.analysis import aggregate, evaluate_targets
from harness.render import write_report
from harness.rows import BACKBONES, BATCH, PEER_WORKERS, THREADS, VIEWS, paired_specs, row_specs
from harness.subprocess_protocol import run_foreground, run_row

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "throughput.py"


def _run_row(spec: dict, timeout: float) -> dict:
    return run_row(spec, timeout, SCRIPT, THREADS, ROOT)


def measure(spec: dict, args, t_start: float, rnd: int) -> dict:
    """One round of one row in a fresh subprocess; measured again (up to ``--retries`` times, while
    ``--retry-until`` allows) if other processes used more than ``--max-foreign`` of the cores."""
    load = [round(x, 2) for x in os.getloadavg()]
    print(
        f"[{time.perf_counter() - t_start:5.0f} s] round {rnd + 1} {spec['key']:28s} (load {load[0]:.2f}) ... ",
        end="",
        flush=True,
    )
    attempts = []
    while True:
        result = _run_row(spec, args.timeout)
        attempts.append(result)
        contention = result.get("foreign_cpu_fraction", 0.0) + result.get("steal_fraction", 0.0)
        if (
            "images_per_s" not in result
            or contention <= args.max_foreign
            or len(attempts) > args.retries
            or time.perf_counter() - t_start > args.retry_until
        ):
            break
        busy = machine.wait_for_idle_cores()
        print(
            f"contended ({100 * contention:.0f}% of the cores used by other processes), again "
            f"(machine now {100 * busy:.0f}% busy) ... ",
            end="",
            flush=True,
        )
    ok = [a for a in attempts if "images_per_s" in a]
    if ok:  # the least contended attempt
        result = min(ok, key=lambda a: a["foreign_cpu_fraction"] + a["steal_fraction"])
        result["contended"] = result["foreign_cpu_fraction"] + result["steal_fraction"] > args.max_foreign
        rate = (
            " / ".join(f"{x:.1f}" for x in result["images_per_s"])
            if isinstance(result["images_per_s"], list)
            else f"{result['images_per_s']:8.1f}"
        )
        print(
            f"{rate} img/s  (cpu {result['cpu_utilisation']:.2f}, others {result['foreign_cpu_fraction']:.2f}, "
            f"rss {result['peak_rss_mb']:.0f} MB)",
            flush=True,
        )
    else:
        print(f"ERROR {result['error']}", flush=True)
    result.update(
        round=rnd,
        load_avg_before=load,
        attempts=[
            {
                "images_per_s": a.get("images_per_s"),
                "foreign_cpu_fraction": a.get("foreign_cpu_fraction"),
                "steal_fraction": a.get("steal_fraction"),
                "error": a.get("error"),
            }
            for a in attempts
        ],
    )
    return result


def profile_row(key: str, peer_python: str | None, args) -> None:
    """Run one row (in its own interpreter: the peer venv for the lightly peer) under torch.profiler."""
    peer = "lightly" if "/peer-lightly" in key else "pil"
    specs = row_specs(list(BACKBONES), peer, False, peer_python, args.set, _precisions(args), args.compile)
    spec = next((s for s in specs if s["key"] == key), None)
    if spec is None:
        sys.exit(
            f"unknown row {key!r}; rows: {', '.join(s['key'] for s in specs)}, "
            + ", ".join(f"{bb}/peer-lightly" for bb in BACKBONES)
        )
    spec["profile"] = {"steps": args.profile_steps, "sort": args.profile_sort, "rows": args.profile_rows}
    run_foreground(spec, SCRIPT, ROOT)


def _precisions(args) -> list[str]:
    return [p.strip() for p in args.precision.split(",") if p.strip()]


def _smoke_steps(specs: list[dict], steps: int | None) -> list[dict]:
    """``--steps N``: 1 warm-up + N timed steps, one round, for every row (a smoke check of the code)."""
    if not steps:
        return specs
    out = []
    for spec in specs:
        spec = {**spec, "warmup": 1, "timed": steps, "rounds": 1}
        if "members" in spec:
            spec["members"] = _smoke_steps(spec["members"], steps)
        out.append(spec)
    return out


def _measure_all(specs: list[dict], backbones: list[str], args, t_start: float):
    measured: dict[str, list[dict]] = {s["key"]: [] for s in specs}
    paired_results: list[dict] = []
    for bb in backbones:
        bb_specs = [s for s in specs if s["backbone"] == bb]
        for rnd in range(bb_specs[0]["rounds"]):
            # Alternate the order (A B C, C B A, ...) so a slow drift of the machine hits every row alike.
            for spec in bb_specs if rnd % 2 == 0 else bb_specs[::-1]:
                measured[spec["key"]].append(measure(spec, args, t_start, rnd))
        for spec in _smoke_steps(paired_specs(bb_specs, args.quick), args.steps):
            ab = measure(spec, args, t_start, 0)
            ab.update(
                key=spec["key"], backbone=bb, precision=spec["precision"], warmup=spec["warmup"], timed=spec["timed"]
            )
            paired_results.append(ab)
    return measured, paired_results


def _settings(args, specs: list[dict], backbones: list[str], peer: str) -> dict:
    return {
        "extra_overrides": args.set,
        "batch": BATCH,
        "views": VIEWS,
        "precision": _precisions(args)[0],  # the key older reports had: the probssl method rows' precision
        "precisions": _precisions(args),
        "compile": args.compile,
        "threads": THREADS,
        "peer": peer,
        "peer_workers": PEER_WORKERS,
        "quick": args.quick,
        "max_foreign": args.max_foreign,
        "steps": {
            bb: {k: next(s[k] for s in specs if s["backbone"] == bb) for k in ("warmup", "timed", "rounds")}
            for bb in backbones
        },
        "statistic": "median of single-step times after warm-up, pooled over rounds; "
        "images/s = batch / median; targets = median over rounds of round-paired ratios",
    }


def run_benchmark(args, peer: str, peer_python: str, out: Path, load_wait: float) -> None:
    backbones = args.backbones or (["convnet"] if args.quick else list(BACKBONES))
    bf16 = machine.cpu_bf16_flags()
    specs = row_specs(
        backbones, peer, args.quick, peer_python, args.set, _precisions(args), args.compile, bf16["native_bf16"]
    )
    specs = _smoke_steps(specs, args.steps)
    load_before = machine.wait_for_quiet_cpu(args.max_load, load_wait)
    if not load_before["quiet"]:
        print(f"warning: load average still {load_before['load_avg'][0]:.2f}; numbers may be polluted", flush=True)
    print("matmul peaks ... ", end="", flush=True)
    peaks = machine.matmul_peaks(THREADS, sizes=tuple(args.peak_sizes))
    print(", ".join(f"{p} {g:.1f} GFLOP/s" for p, g in peaks["gflops"].items()), flush=True)
    t_start = time.perf_counter()
    measured, paired_results = _measure_all(specs, backbones, args, t_start)
    rows = [aggregate(spec, measured[spec["key"]], peaks) for spec in specs]
    report = {
        "command": "python benchmarks/throughput.py" + (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else ""),
        "machine": machine.machine_info(THREADS, load_before, peaks),
        "settings": _settings(args, specs, backbones, peer),
        "total_s": round(time.perf_counter() - t_start, 1),
        "results": rows,
        "same_process": paired_results,
    }
    report["targets"] = evaluate_targets(rows, paired_results, bool(report["machine"]["torch_amx_tile"]))
    md = write_report(out, report)
    print()
    print(md)
    print(f"wrote {out / 'throughput.json'} and {out / 'throughput.md'} ({report['total_s']:.0f} s)")
