"""The machine a benchmark runs on: load and contention from /proc, CPU model and bf16 flags, and the
fp32 / bf16 matmul peaks that achieved GFLOP/s are compared with.

Stdlib only at import time: the lightly peer's worker imports this module in its own venv, where
probssl's dependencies are absent (torch is imported inside :func:`matmul_peaks` only).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import time
from pathlib import Path

# /proc/cpuinfo flags that decide whether bf16 is native: AMX tiles with bf16, AVX512-BF16 dot products,
# AVX512F (oneDNN's fallback) and aarch64's 'bf16'. Without the first two (or 'bf16'), bf16 is emulated.
BF16_FLAGS = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "bf16")
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")


def machine_cpu() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine so far, from /proc/stat (0, 0 if unreadable)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / tick, steal / tick


def process_cpu(pids: list[int]) -> float:
    """utime + stime in seconds of the given live processes (DataLoader workers), from /proc."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, ValueError, IndexError):
            pass
    return total


def _cpuinfo() -> tuple[str, set[str]]:
    """(model name, flags) of the first processor; x86 says 'flags', aarch64 'Features'."""
    model, flags = "", set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown", flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return model or platform.processor() or "unknown", flags


def cpu_model() -> str:
    return _cpuinfo()[0]


def cpu_bf16_flags() -> dict:
    """The bf16-relevant flags this CPU advertises and whether bf16 is native or emulated here."""
    _, flags = _cpuinfo()
    if platform.machine().lower() not in ("aarch64", "arm64"):
        flags.discard("bf16")  # only aarch64's 'bf16' means bf16 arithmetic
    native = [f for f in NATIVE_BF16_FLAGS if f in flags]
    return {"flags": sorted(f for f in flags if f in BF16_FLAGS), "native_bf16": bool(native)}


def wait_for_quiet_cpu(max_load: float, max_wait: float) -> dict:
    """Sleep (30 s at a time, up to ``max_wait`` s) until the 1-minute load average is < ``max_load``."""
    start = time.time()
    load = os.getloadavg()
    while load[0] >= max_load and time.time() - start < max_wait:
        print(
            f"load average {load[0]:.2f} >= {max_load}: waiting 30 s ({time.time() - start:.0f}/{max_wait:.0f} s)",
            flush=True,
        )
        time.sleep(30)
        load = os.getloadavg()
    return {
        "load_avg": [round(x, 2) for x in load],
        "waited_s": round(time.time() - start, 1),
        "quiet": load[0] < max_load,
    }


def wait_for_idle_cores(max_busy: float = 0.1, max_wait: float = 60.0, window: float = 5.0) -> float:
    """Sample /proc/stat in ``window``-s slices until the machine's busy fraction is < ``max_busy``
    (at most ``max_wait`` s); returns the last busy fraction."""
    cores = len(os.sched_getaffinity(0))
    start, busy = time.time(), 1.0
    while time.time() - start < max_wait:
        b0 = sum(machine_cpu())
        time.sleep(window)
        busy = (sum(machine_cpu()) - b0) / (cores * window)
        if busy < max_busy:
            break
    return busy


def _best_matmul_gflops(size: int, dtype, budget_s: float) -> float:
    """Best GFLOP/s of one square matmul over repeats filling ``budget_s`` (after one warm-up)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=gen).to(dtype) for _ in range(2))
    best = float("inf")
    with torch.inference_mode():
        torch.mm(a, b)  # warm-up: kernel selection, page faults
        start = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - t0)
            if time.perf_counter() - start > budget_s:
                break
    return 2.0 * size**3 / best / 1e9


PEAK_SIZES = (1024, 2048)  # AMX bf16 reaches its peak only on larger matrices (1,419 vs ~2,000+ GFLOP/s seen)
SLOW_MATMUL_S = 0.25  # a matmul slower than this at one size (emulated bf16) is not tried at the next


def matmul_peaks(threads: int, sizes: tuple[int, ...] = PEAK_SIZES, budget_s: float = 1.0) -> dict:
    """fp32 and bf16 matmul GFLOP/s at ``threads`` threads, the best over ``sizes``: the ceilings a row's achieved
    GFLOP/s is compared with. A few seconds in all; a size is skipped where the previous one was already slow
    (emulated bf16 needs ~1.5 s a 1024 matmul on 2 AMD cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    by_size: dict[str, dict[int, float]] = {"fp32": {}, "bf16": {}}
    try:
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            for size in sorted(sizes):
                gflops = _best_matmul_gflops(size, dtype, budget_s)
                by_size[name][size] = round(gflops, 2)
                if 2.0 * size**3 / gflops / 1e9 > SLOW_MATMUL_S:
                    break
    finally:
        torch.set_num_threads(before)
    peaks = {name: max(v.values()) for name, v in by_size.items()}
    best = max(peaks, key=peaks.get)
    return {
        "sizes": sorted(sizes),
        "by_size": by_size,
        "threads": threads,
        "gflops": peaks,
        "best_precision": best,
        "best_gflops": peaks[best],
    }


def machine_info(threads: int, load_before: dict, peaks: dict) -> dict:
    import torch

    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private torch API: may vanish
    return {
        "cpu_model": cpu_model(),
        "cpu_bf16": cpu_bf16_flags(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_amx_tile": bool(amx()) if amx is not None else None,
        "matmul_peaks": peaks,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": threads,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
    }
