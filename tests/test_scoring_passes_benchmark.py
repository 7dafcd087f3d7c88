"""benchmarks/scoring_passes.py runs (one tiny round), so the measurement behind the Scorer's shared pass cannot rot."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_scoring_passes_benchmark_runs_and_reports(tmp_path):
    out = tmp_path / "scoring-passes"
    cmd = [sys.executable, "benchmarks/scoring_passes.py", "--backbones", "convnet", "--images", "16"]
    cmd += ["--repeats", "1", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert [(r["backbone"], r["precision"]) for r in rows] == [("convnet", "fp32"), ("convnet", "bf16")]
    for r in rows:
        one = 1 if r["precision"] == "fp32" else 2
        assert r["backbone_images_per_image"] == {"one_pass": one, "per_score": 5}
        assert r["max_abs_score_difference"] < 1e-4  # the same numbers either way
        assert {"combined", "density", "epistemic", "knn_distance", "mc_dispersion"} <= set(r["scores"])
    assert "| convnet | bf16 | 16 |" in out.with_suffix(".md").read_text()
