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


def test_the_share_is_read_off_a_finished_runs_own_log(tmp_path):
    run, old = tmp_path / "run", tmp_path / "old"
    run.mkdir(), old.mkdir()
    lines = [
        {"time": 100.0, "step": 10, "loss": 1.0},
        {"time": 150.0, "step": 20, "monitor/seconds_total": 2.0, "monitor/samples": 512},
        {"time": 202.0, "step": 30, "monitor/seconds_total": 4.0, "monitor/samples": 512},
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (old / "metrics.jsonl").write_text(json.dumps(lines[0]) + "\n")
    cmd = [sys.executable, "benchmarks/monitor_cost.py", "--runs", str(run), str(old)]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    first, second = result.stdout.strip().splitlines()
    assert "2 measurements, 4.0 s of monitors in 102 s" in first and "4.08% of training" in first  # 4 / (102 - 4)
    assert "no monitor/seconds_total" in second
