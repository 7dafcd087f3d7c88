"""What the subprocess-driven benchmarks (precision_accuracy, learning_curve, monitor_cost) share: running the
``probssl`` CLI with one clear failure message, and writing a report as ``OUT.json`` + ``OUT.md`` with the command
and the machine it ran on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from machine import machine_info


def run_probssl(*args: str) -> None:
    """``python -m probssl ARGS``; on failure exit with the command and the tail of its output."""
    cmd = [sys.executable, "-m", "probssl", *args]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


def report_header(script: str, load_before: list[float]) -> dict:
    """The command line (with the OMP_NUM_THREADS it ran with, when set) and the machine, with the load average taken
    before measuring."""
    threads = os.environ.get("OMP_NUM_THREADS")
    return {
        "command": (f"OMP_NUM_THREADS={threads} " if threads else "")
        + f"python benchmarks/{script} "
        + " ".join(sys.argv[1:]),
        "machine": machine_info(int(os.environ.get("OMP_NUM_THREADS", "2")), {"load_1_5_15": load_before}, {}),
    }


def write_report(out: Path, report: dict, markdown: Callable[[dict], str]) -> None:
    """OUT.json (the whole report) and OUT.md (``markdown(report)``), which is also printed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
