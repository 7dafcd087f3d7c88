"""benchmarks/streaming.py runs (tiny sizes, a small backbone), so the benchmark behind the docs cannot rot."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_streaming_benchmark_runs_and_reports(tmp_path):
    out = tmp_path / "streaming"
    cmd = [sys.executable, "benchmarks/streaming.py", "--images", "600", "--steps", "1", "--backbone", "convnet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([*cmd, "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["images"] == 600 and report["machine"]["cpu_model"]
    assert all(v > 0 for v in report["feed_img_per_s"].values())
    assert set(report["step_img_per_s"]) == {"in_memory", "streamed"}
    assert "Streamed feed (2 workers)" in out.with_suffix(".md").read_text()
