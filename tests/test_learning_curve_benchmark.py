"""benchmarks/learning_curve.py runs end to end on digits (two epochs), evaluates the checkpoint that ended each
listed epoch, and resumes: a second call retrains and re-evaluates nothing."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import learning_curve  # noqa: E402


def test_learning_curve_reads_each_epochs_checkpoint_and_resumes(tmp_path):
    out, runs = tmp_path / "curve", tmp_path / "runs"
    cmd = [sys.executable, "benchmarks/learning_curve.py", "--dataset", "digits", "--methods", "simclr"]
    cmd += ["--epochs", "1", "2", "--runs", str(runs), "--out", str(out), "--set", "train.batch_size=256"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["command"].startswith("OMP_NUM_THREADS=1 python benchmarks/learning_curve.py --dataset digits")
    (c,) = report["curves"]
    run = runs / "digits" / "simclr"
    steps_per_epoch = json.loads((run / "eval-epoch1.json").read_text())["step"]
    assert [p["epoch"] for p in c["points"]] == [1, 2]
    assert [p["step"] for p in c["points"]] == [steps_per_epoch, 2 * steps_per_epoch]
    for p in c["points"]:
        assert (
            p["linear_acc"] == json.loads((run / f"eval-epoch{p['epoch']}.json").read_text())["summary"]["linear_acc"]
        )
    final = c["points"][-1]["linear_acc"]
    first_within = next(p["epoch"] for p in c["points"] if 100 * (final - p["linear_acc"]) <= 0.5)
    assert c["plateau_epoch"] == (None if first_within == 2 else first_within) and c["train_s"] > 0
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(out.with_suffix(".json").read_text())["curves"][0]["train_s"] == 0.0  # nothing retrained


def test_curve_trains_in_the_claims_run_unless_that_run_finished(tmp_path):
    """--claims-runs: an unfinished claims run is shared (trained there, with every epoch kept), and stays shared once
    finished; one the claims suite finished kept only its last checkpoints, so the curve trains its own run."""
    import argparse
    import importlib.util

    spec = importlib.util.spec_from_file_location("learning_curve", ROOT / "benchmarks" / "learning_curve.py")
    lc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lc)
    args = argparse.Namespace(
        dataset="mnist", seed=1, runs=tmp_path / "own", claims_runs=tmp_path / "claims", epochs=[1, 2, 3]
    )
    shared = tmp_path / "claims" / "mnist" / "simclr" / "seed1"
    assert lc.run_dir("simclr", args) == shared  # not started yet: the curve starts it
    shared.mkdir(parents=True)
    (shared / "status.json").write_text(json.dumps({"status": "interrupted", "step": 3}))
    assert lc.run_dir("simclr", args) == shared  # interrupted: the curve resumes it
    (shared / "status.json").write_text(json.dumps({"status": "finished", "step": 9}))
    for step in (6, 9):  # the claims suite keeps its last two checkpoints
        (shared / "checkpoints" / f"step-{step:08d}").mkdir(parents=True)
    assert lc.run_dir("simclr", args) == tmp_path / "own" / "mnist" / "simclr"
    (shared / "checkpoints" / "step-00000003").mkdir()  # every epoch kept: a curve trained it, and reads it again
    assert lc.run_dir("simclr", args) == shared
    assert (
        lc.run_dir("simclr", argparse.Namespace(**{**vars(args), "claims_runs": None}))
        == args.runs / "mnist" / "simclr"
    )


def test_the_last_point_alone_is_no_plateau():
    def pts(*accs):
        return [{"epoch": e, "linear_acc": a} for e, a in zip((1, 2, 5, 10), accs)]

    assert learning_curve.plateau_epoch(pts(0.90, 0.95, 0.985, 0.988), 0.5) == 5  # 0.3 points below epoch 10
    assert learning_curve.plateau_epoch(pts(0.90, 0.92, 0.93, 0.95), 0.5) is None  # still 2 points up at the end
    assert learning_curve.plateau_epoch(pts(0.95), 0.5) == 1  # a one-point curve is its own reference


def test_report_only_rederives_plateaus_and_markdown_from_the_json(tmp_path):
    """--report-only trains nothing: it recomputes each plateau from the JSON's own points and plateau_points, keeps
    the measuring command and machine, and records its own command."""
    out = tmp_path / "curve"
    points = [{"epoch": e, "step": 10 * e, "linear_acc": a} for e, a in ((1, 0.90), (2, 0.97), (5, 0.972))]
    machine = {"cpu_model": "X", "cpu_bf16": {"native_bf16": False}, "torch": "t", "threads": 1, "date": "d"}
    report = {"command": "measured", "machine": machine, "dataset": "digits", "seed": 0, "epochs": [1, 2, 5]}
    report |= {"plateau_points": 0.5, "curves": [{"preset": "simclr-digits", "points": points, "plateau_epoch": 1}]}
    out.with_suffix(".json").write_text(json.dumps(report))
    cmd = [sys.executable, "benchmarks/learning_curve.py", "--report-only", "--out", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    again = json.loads(out.with_suffix(".json").read_text())
    assert again["curves"][0]["plateau_epoch"] == 2 and again["command"] == "measured"
    assert again["report_command"].endswith(f"--report-only --out {out}")
    assert "| simclr-digits | 0.9000 | 0.9700 | 0.9720 | epoch 2 |" in out.with_suffix(".md").read_text()
    missing = subprocess.run([*cmd[:-1], str(tmp_path / "none")], cwd=ROOT, capture_output=True, text=True)
    assert missing.returncode != 0 and "no such report" in missing.stderr and "Traceback" not in missing.stderr
