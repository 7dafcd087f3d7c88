"""Hostile inputs, the way a user gives them (issue 17): every case exits non-zero with ONE line naming the
problem and the fix, no traceback, and nothing of a run lost or changed. Bad configs fail before any run
folder is created."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from probssl.cli.main import main
from probssl.config import load_config
from probssl.train import Trainer

TINY = ["--set", "train.epochs=1", "--set", "data.train_subset=128", "--set", "train.progress=false"]


def _fails_cleanly(capsys, argv, *needles, code=2):
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and err.count("\n") == 0, err
    assert err.startswith("probssl: error: ")
    for needle in needles:
        assert needle in err, (needle, err)
    return err


@pytest.mark.parametrize(
    "override, needles",
    [
        ("method.name=simclrr", ["Unknown method.name 'simclrr'", "Did you mean 'simclr'"]),
        ("model.backbone=resnet-18", ["unknown model.backbone 'resnet-18'", "Did you mean"]),
        ("train.optimizer=adamx", ["train.optimizer must be one of adamw, adam, sgd, lars"]),
        ("train.precision=bf32", ["train.precision must be one of auto, fp32, bf16, fp16"]),
        ("train.device=gpu", ["train.device must be auto, cpu, cuda or cuda:N"]),
        ("augment.recipe=byol", ["augment.recipe must be one of simclr, simvae, none"]),
        ("augment.crop_scale=[0.5, 2.0]", ["augment.crop_scale must lie in (0, 1]"]),
        ("augment.hflip_p=2", ["augment.hflip_p must be <= 1.0"]),
        ("model.width=-1", ["model.width must be > 0.0"]),
        ("model.head_layers=0", ["model.head_layers must be >= 1"]),
        ("model.feature_dim=0", ["model.feature_dim must be >= 1"]),
        ("train.lr=nan", ["train.lr: expected a finite number"]),
        ("train.log_every=0", ["train.log_every must be >= 1"]),
        ("train.max_steps=0", ["train.max_steps must be >= 1"]),
        ("data.train_subset=1", ["data.train_subset must be >= 2"]),
        ("train.weight_decay=-1", ["train.weight_decay must be >= 0.0"]),
        ("train.warmup_epochs=-1", ["train.warmup_epochs must be >= 0.0"]),
        ("train.num_threads=-1", ["train.num_threads must be >= 0"]),
        ("data.name=mnsit", ["Unknown dataset 'mnsit'", "Did you mean 'mnist'"]),
    ],
)
def test_bad_values_fail_before_any_run_folder_exists(tmp_path, capsys, override, needles):
    out = tmp_path / "run"
    _fails_cleanly(capsys, ["train", "--preset", "simclr-digits", "--out", str(out), "--set", override], *needles)
    assert not out.exists()


@pytest.mark.parametrize(
    "content, needle",
    [
        ("model: [unclosed", "is not valid YAML (line 1"),
        ("- a\n- list\n", "must hold a mapping of sections"),
        (b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "is not text"),
        (None, "is a directory"),
    ],
)
def test_a_bad_config_file_is_named(tmp_path, capsys, content, needle):
    path = tmp_path / "bad.yaml"
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    _fails_cleanly(
        capsys,
        ["train", "--preset", "simclr-digits", "--config", str(path), "--out", str(tmp_path / "r")],
        str(path),
        needle,
    )


def test_out_pointing_at_a_file(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    _fails_cleanly(capsys, ["train", "--preset", "simclr-digits", "--out", str(target), *TINY], "is a file")
    assert target.read_text() == "mine"


def test_missing_paths_are_named(tmp_path, capsys):
    _fails_cleanly(capsys, ["eval", str(tmp_path / "nope")], "nope")
    _fails_cleanly(
        capsys,
        [
            "train",
            "--preset",
            "simclr-digits",
            "--out",
            str(tmp_path / "r"),
            "--resume",
            str(tmp_path / "nowhere"),
            *TINY,
        ],
        "no such file or folder",
    )


def test_the_demo_never_deletes_a_users_run(tmp_path, capsys):
    mine = tmp_path / "simclr-digits"
    mine.mkdir()
    (mine / "status.json").write_text('{"status": "finished"}')
    (mine / "notes.txt").write_text("seed 7, keep")
    _fails_cleanly(capsys, ["demo", "--out", str(tmp_path), "--epochs", "1"], "left untouched", "--out")
    assert (mine / "notes.txt").read_text() == "seed 7, keep"


@pytest.fixture
def finished_run(tmp_path):
    run = tmp_path / "run"
    config = load_config("simclr-digits", overrides=["train.epochs=1", "data.train_subset=256", "train.progress=false"])
    Trainer(config, run).fit()
    return run


def test_a_torn_metrics_log_and_eval_json_do_not_crash_listing_resume_or_report(finished_run, tmp_path, capsys):
    with open(finished_run / "metrics.jsonl", "a") as f:
        f.write('{"step": 9, "loss": 1.2')  # what SIGKILL leaves
    (finished_run / "eval.json").write_text('{"summary": {"linear_acc": 0.9')
    assert main(["runs", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "eval.json unreadable" in out and "finished" in out
    overrides = ["train.epochs=1", "data.train_subset=256", "train.progress=false"]
    Trainer(load_config("simclr-digits", overrides=overrides), finished_run, resume="auto").fit()
    _fails_cleanly(capsys, ["report", str(finished_run), "--out", str(tmp_path / "rep")], "eval.json", "probssl eval")


def test_a_second_trainer_on_a_run_in_use_is_refused(finished_run, capsys):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (finished_run / ".lock").write_text(json.dumps({"pid": sleeper.pid, "host": os.uname().nodename}))
        before = (finished_run / "metrics.jsonl").read_text()
        _fails_cleanly(
            capsys,
            [
                "train",
                "--preset",
                "simclr-digits",
                "--out",
                str(finished_run),
                "--resume",
                "auto",
                "--set",
                "train.epochs=1",
                "--set",
                "data.train_subset=256",
                "--set",
                "train.progress=false",
            ],
            f"in use by process {sleeper.pid}",
        )
        assert (finished_run / "metrics.jsonl").read_text() == before
    finally:
        sleeper.kill()
    # the owner is gone: the lock is stale and the run continues
    sleeper.wait()
    overrides = ["train.epochs=1", "data.train_subset=256", "train.progress=false"]
    Trainer(load_config("simclr-digits", overrides=overrides), finished_run, resume="auto").fit()
    assert not (finished_run / ".lock").exists()


def test_a_sigkilled_run_reads_as_dead_not_running(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("method: {name: simclr}\n")
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    (run / "status.json").write_text(
        json.dumps({"status": "running", "step": 3, "pid": proc.pid, "host": os.uname().nodename})
    )
    assert main(["runs", str(tmp_path)]) == 0
    assert "dead" in capsys.readouterr().out


def test_a_diverged_run_is_not_reported_as_finished(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--preset",
            "simvae-digits",
            "--out",
            str(out),
            "--set",
            "train.lr=1e6",
            "--set",
            "train.max_steps=30",
            "--set",
            "train.progress=false",
            "--set",
            "train.checkpoint_every_steps=10",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and ("diverged" in err or "Non-finite" in err), err
    assert json.loads((out / "status.json").read_text())["status"] == "failed"


def test_a_run_killed_before_its_first_checkpoint_restarts_its_log(tmp_path):
    run = tmp_path / "run"
    overrides = ["train.epochs=1", "data.train_subset=256", "train.progress=false", "train.log_every=1"]
    config = load_config("simclr-digits", overrides=overrides)
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 5.0}\n{"step": 2, "loss": 4.9}\n')
    Trainer(config, run, resume="auto").fit()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "loss" in r]  # training records (the monitors log their own)
    assert steps == sorted(set(steps)) and steps[0] == 1


def test_no_traceback_from_the_real_command_line(tmp_path):
    """The same path as a user's shell: a subprocess, exit code 2, one line on stderr."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "probssl",
            "train",
            "--preset",
            "simclr-digits",
            "--out",
            str(tmp_path / "r"),
            "--set",
            "train.optimizer=adamx",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "train.optimizer" in result.stderr
    assert not Path(tmp_path / "r").exists()
