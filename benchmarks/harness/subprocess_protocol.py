"""Running one row in a separate process and reading its JSON back.

Each row runs in a fresh interpreter (``python benchmarks/throughput.py --worker SPEC_JSON``) so that
its peak RSS (``ru_maxrss``) is its own and no state leaks between rows; the lightly peer's rows run
in the peer venv's interpreter. The child prints one line ``RESULT_TAG + json``; anything else it
prints (warnings, tqdm) is ignored. Stdlib only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

RESULT_TAG = "THROUGHPUT_RESULT "


def child_env(threads: int) -> dict:
    # OMP/MKL read their thread counts at start-up, before torch.set_num_threads can act.
    return dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONWARNINGS="ignore")


def emit_result(result: dict) -> None:
    """Child side: the one line the parent looks for."""
    print(RESULT_TAG + json.dumps(result), flush=True)


def read_result(stdout: str) -> dict | None:
    for line in stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG) :])
    return None


def run_row(spec: dict, timeout: float, script: Path, threads: int, cwd: Path) -> dict:
    """Parent side: run ``script --worker spec`` in ``spec['python']`` (default this interpreter)."""
    python = spec.get("python") or sys.executable
    payload = {k: v for k, v in spec.items() if k != "python"}
    cmd = [python, str(script), "--worker", json.dumps(payload)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=child_env(threads), cwd=cwd)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    result = read_result(proc.stdout)
    if result is not None:
        result["process_wall_s"] = time.perf_counter() - t0
        return result
    return {
        "error": f"exit {proc.returncode}: " + (proc.stderr.strip().splitlines() or ["no output"])[-1][-400:],
        "stderr_tail": proc.stderr[-3000:],
    }


def run_foreground(spec: dict, script: Path, cwd: Path) -> None:
    """Run ``script --worker spec`` with its output on this terminal (the ``--profile`` mode)."""
    python = spec.pop("python", None) or sys.executable
    subprocess.run([python, str(script), "--worker", json.dumps(spec)], cwd=str(cwd), check=True)
