"""The child side of a measurement: build one row's runner in this process and time it.

:func:`worker` is what ``throughput.py --worker SPEC`` runs. Stdlib only at import time (the lightly
peer runs it in its own venv).
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time

from harness.machine import machine_cpu
from harness.runners import ROOT, TimedWindow, make_runner


def _flops(runner, spec: dict) -> dict:
    """FLOPs of one step, counted after the timed steps so the counter cannot slow them."""
    try:
        return {"flops_per_step": runner.count_flops()}
    except Exception as err:  # a counter failure must not lose the row's timing
        return {"flops_per_step": None, "flops_error": f"{type(err).__name__}: {err}"[:300]}


def measure_row(spec: dict) -> dict:
    """Warm-up, then ``timed`` single steps; CPU accounting of the timed window; FLOPs; peak RSS."""
    import torch

    threads = spec["threads"]
    torch.set_num_threads(threads)
    t_build = time.perf_counter()
    runner = make_runner(spec)
    torch.set_num_threads(threads)  # building a DataLoader or Trainer may have changed it
    build_s = time.perf_counter() - t_build
    window = TimedWindow()
    warmup, steps = runner.run_steps(spec["warmup"], spec["timed"], window)
    totals = [s["total"] for s in steps]
    median = statistics.median(totals)
    result = {
        "step_s_median": median,
        "step_s": totals,
        "warmup_step_s": warmup,
        "images_per_s": spec["batch"] / median,
        "phases_ms": {k: [1e3 * s[k] for s in steps] for k in steps[0] if k != "total"},
        **window.summary(len(os.sched_getaffinity(0))),
        "build_s": build_s,
        "params": runner.params,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "versions": getattr(runner, "versions", {}),
        "timed_via": "Trainer.fit + callback" if getattr(runner, "via_fit", False) else "direct steps",
        **_flops(runner, spec),
    }
    runner.close()
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["peak_rss_children_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return result


def measure_paired(spec: dict) -> dict:
    """Several rows in one process, their steps interleaved (A B C, B C A, C A B, ...): each step of a
    row has a step of every other row right next to it, so slow phases of the shared machine and
    per-process effects (memory layout, which core a thread lands on) cancel out of the ratios."""
    import torch

    torch.set_num_threads(spec["threads"])
    runners = [make_runner({**m, "single_steps": True}) for m in spec["members"]]
    torch.set_num_threads(spec["threads"])
    k = len(runners)
    for i in range(spec["warmup"]):
        for j in range(k):
            runners[(i + j) % k].step()
    times = [[] for _ in runners]
    m0, r0, w0 = machine_cpu(), resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for i in range(spec["timed"]):
        for j in range(k):
            times[(i + j) % k].append(runners[(i + j) % k].step()["total"])
    wall = time.perf_counter() - w0
    m1, r1 = machine_cpu(), resource.getrusage(resource.RUSAGE_SELF)
    cpu_self = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    cores = len(os.sched_getaffinity(0))
    return {
        "keys": [m["key"] for m in spec["members"]],
        "step_s": times,
        "step_s_median": [statistics.median(t) for t in times],
        "cpu_utilisation": cpu_self / wall,
        "foreign_cpu_fraction": max(0.0, (m1[0] - m0[0]) - cpu_self) / (cores * wall),
        "steal_fraction": (m1[1] - m0[1]) / (cores * wall),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "images_per_s": [spec["batch"] / statistics.median(t) for t in times],
        "step_s_median_all": statistics.median(t for ts in times for t in ts),
    }


def profile_in_process(spec: dict) -> dict:
    """One row under torch.profiler: the median phase times and the by-op table, printed."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(spec["threads"])
    runner = make_runner({**spec, "single_steps": True})  # single steps, not a fit() run
    torch.set_num_threads(spec["threads"])
    for _ in range(spec["warmup"]):
        runner.step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        phases = [runner.step() for _ in range(spec["profile"]["steps"])]
    print(f"{spec['key']}: median of {len(phases)} profiled steps (ms)")
    for name in phases[0]:
        print(f"  {name:14s} {1e3 * statistics.median(p[name] for p in phases):9.1f}")
    print(prof.key_averages().table(sort_by=spec["profile"]["sort"], row_limit=spec["profile"]["rows"]))
    return {}


def worker(spec: dict) -> dict:
    if spec["kind"] != "peer-lightly":  # the peer venv has no probssl install: it imports models only
        sys.path.insert(0, str(ROOT))
    if spec.get("profile"):
        return profile_in_process(spec)
    if spec["kind"] == "paired":
        return measure_paired(spec)
    return measure_row(spec)
