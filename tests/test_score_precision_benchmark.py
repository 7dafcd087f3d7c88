"""benchmarks/score_precision.py runs on a finished run and reports both ways, so the evidence behind
EvalOptions.score_precision cannot rot."""

import json
import os
import subprocess
import sys
from pathlib import Path

from probssl.config import load_config
from probssl.train import Trainer

ROOT = Path(__file__).resolve().parents[1]


def test_score_precision_benchmark_runs_and_reports(tmp_path):
    run = tmp_path / "run"
    overrides = ["train.epochs=1", "train.batch_size=64", "data.train_subset=256", "train.progress=false"]
    Trainer(load_config("vsimclr-digits", overrides=[*overrides, "method.epistemic=true"]), run).fit()
    out = tmp_path / "score-precision"
    cmd = [sys.executable, "benchmarks/score_precision.py", "--runs", str(run), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    row = json.loads(out.with_suffix(".json").read_text())["rows"][0]
    assert row["method"] == "vsimclr" and row["precision"] == "bf16"
    assert {"epistemic / noise", "log_det_cov / errors", "knn_distance / noise"} <= set(row["difference"])
    for key, diff in row["difference"].items():
        assert abs(diff - (row["auroc_same"][key] - row["auroc_fp32"][key])) < 1e-9, key
    assert row["difference"]["knn_distance / noise"] == 0  # the kNN features are the bf16 ones both ways
    d = row["distinct_values"]
    assert d["score"] == "log_det_cov" and 1 <= d["head_autocast"] <= d["head_float32"] <= d["images"]
    assert set(row["uncertainty_s"]) == {"fp32", "same"}
    assert "| vsimclr digits" in out.with_suffix(".md").read_text()
