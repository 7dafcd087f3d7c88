"""benchmarks/monitor_cost.py runs (one tiny round), so the benchmark behind the monitors' cost cannot rot."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_monitor_cost_benchmark_runs_and_reports(tmp_path):
    out = tmp_path / "monitor-cost"
    cmd = [sys.executable, "benchmarks/monitor_cost.py", "--presets", "simclr-digits", "--rounds", "1"]
    cmd += ["--set", "train.epochs=2", "--set", "data.train_subset=256", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    row = json.loads(out.with_suffix(".json").read_text())["rows"][0]
    assert row["epochs"] == 2 and row["uncapped"]["monitor_s"] > 0 and row["uncapped"]["train_s"] > 0
    assert row["uncapped"]["monitored_epochs"] == [2] and row["uncapped"]["final_samples"] == [256]  # all 256 images
    assert "default 5 %" in out.with_suffix(".md").read_text()
