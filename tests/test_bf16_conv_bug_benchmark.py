"""benchmarks/bf16_conv_bug.py runs (one trial per geometry): the evidence behind probssl.train.conv_guard."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_benchmark_reports_every_geometry_and_the_guard_holds():
    cmd = [sys.executable, "benchmarks/bf16_conv_bug.py", "--trials", "1"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in result.stdout.splitlines()[1:]]
    assert len(rows) == 7 and all(r["guarded"] == 0.0 for r in rows)
