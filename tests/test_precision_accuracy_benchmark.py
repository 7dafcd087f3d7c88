"""benchmarks/precision_accuracy.py runs (one digits epoch), so the bf16-vs-fp32 accuracy row behind the docs
cannot rot, and its verdict is the documented target applied to the two runs' own accuracies."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_precision_accuracy_benchmark_trains_both_precisions(tmp_path):
    out = tmp_path / "precision-accuracy"
    cmd = [sys.executable, "benchmarks/precision_accuracy.py", "--cases", "digits", "--set", "train.epochs=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([*cmd, "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.with_suffix(".json").read_text())
    assert [r["preset"] for r in report["rows"]] == ["simclr-digits", "vsimclr-digits"]
    for r in report["rows"]:
        assert r["fp32"]["precision_used"] == "fp32" and r["bf16"]["precision_used"] == "bf16"
        diff = 100 * (r["bf16"]["linear_acc"] - r["fp32"]["linear_acc"])
        assert r["diff_points"] == round(diff, 2) and r["met"] == (abs(diff) <= report["target_points"])
        seed_diff = 100 * (r["fp32_next_seed"]["linear_acc"] - r["fp32"]["linear_acc"])
        assert r["fp32_next_seed"]["precision_used"] == "fp32" and r["seed_diff_points"] == round(seed_diff, 2)
    assert "bf16 - fp32 (points)" in out.with_suffix(".md").read_text()
