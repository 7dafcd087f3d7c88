import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from probssl.cli.main import main

QUICK = [
    "--set",
    "train.epochs=1",
    "--set",
    "train.progress=false",
    "--set",
    "data.train_subset=128",
    "--set",
    "train.batch_size=64",
]


def test_unknown_config_key_is_one_clear_error(capsys):
    assert main(["train", "--preset", "simclr-digits", "--set", "train.epoch=1"]) == 2
    err = capsys.readouterr().err
    assert "Unknown config key 'train.epoch'" in err and "Did you mean 'epochs'" in err
    assert "Traceback" not in err


def test_missing_dataset_is_one_clear_error(tmp_path, capsys):
    code = main(
        [
            "train",
            "--preset",
            "simclr-mnist",
            "--out",
            str(tmp_path / "r"),
            "--set",
            f"data.data_dir={tmp_path}",
            "--set",
            "data.download=false",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte.gz" in err and "Traceback" not in err


def test_corrupt_dataset_file_is_one_clear_error(tmp_path, capsys, shared_data_dir):
    (tmp_path / "mnist").mkdir()
    for f in Path(shared_data_dir, "mnist").iterdir():
        shutil.copy(f, tmp_path / "mnist" / f.name)
    target = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    target.write_bytes(gzip.compress(b"garbage"))
    code = main(
        [
            "train",
            "--preset",
            "simclr-mnist",
            "--out",
            str(tmp_path / "r"),
            "--set",
            f"data.data_dir={tmp_path}",
            "--set",
            "data.download=false",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "t10k-labels-idx1-ubyte.gz" in err and "ec29112dd5afa0611ce80d1b7f02629c" in err
    assert "Traceback" not in err


def test_train_eval_report_round_trip(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--preset", "vsimclr-digits", "--out", str(run), *QUICK]) == 0
    assert main(["eval", str(run)]) == 0
    assert (run / "eval.json").exists()
    assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 0
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "vsimclr" in report and "spectrum.png" in report
    assert (tmp_path / "rep" / "spectrum.png").stat().st_size > 1000


def test_eval_of_a_folder_without_checkpoint(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    assert "has no checkpoint" in capsys.readouterr().err


def test_presets_and_methods_listing(capsys):
    assert main(["presets"]) == 0
    assert "vsimclr-mnist" in capsys.readouterr().out
    assert main(["presets", "simclr-digits"]) == 0
    assert "name: digits" in capsys.readouterr().out
    assert main(["methods"]) == 0
    assert "vsimclr" in capsys.readouterr().out


def test_python_dash_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "probssl", "presets"], capture_output=True, text=True, check=True)
    assert "simclr-digits" in out.stdout


@pytest.mark.parametrize(
    "override,match",
    [
        ("train.batch_size=-4", "batch_size must be >= 2"),
        ("augment.views=40", "augment.views must be <= 16"),
        ("model.embed_dim=1", "embed_dim must be >= 2"),
    ],
)
def test_impossible_values_exit_non_zero_with_one_message(tmp_path, capsys, override, match):
    assert main(["train", "--preset", "vsimclr-digits", "--out", str(tmp_path / "r"), "--set", override]) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err


def test_run_dir_with_another_run_exits_non_zero(tmp_path, capsys):
    assert main(["train", "--preset", "simclr-digits", "--out", str(tmp_path / "r"), *QUICK]) == 0
    assert main(["train", "--preset", "vsimclr-digits", "--out", str(tmp_path / "r"), *QUICK]) == 2
    assert "different config" in capsys.readouterr().err


def test_runs_lists_status_and_metrics(tmp_path, capsys):
    assert main(["train", "--preset", "simclr-digits", "--out", str(tmp_path / "a"), *QUICK]) == 0
    capsys.readouterr()
    assert main(["runs", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "simclr" in out and "finished" in out and "digits" in out


def test_a_finished_run_continues_for_more_epochs(tmp_path, capsys):
    """`--resume auto` with a larger train.epochs: the steps go on from the last checkpoint, the log holds each
    step once, and the learning rate follows the warm-up + cosine schedule of the new total from the restored
    step (README "Resuming"). A budget below the run's step is refused."""
    import json
    import math
    import os

    from probssl.config import load_config
    from probssl.train.optim import warmup_cosine

    run = tmp_path / "run"
    base = ["-m", "probssl", "train", "--preset", "simclr-digits", "--out", str(run)]
    base += ["--set", "data.train_subset=256", "--set", "train.batch_size=64", "--set", "train.progress=false"]
    base += ["--set", "train.log_every=1", "--set", "train.warmup_epochs=0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run([sys.executable, *base, "--set", "train.epochs=1"], capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr
    more = [sys.executable, *base, "--set", "train.epochs=2", "--resume", "auto"]
    second = subprocess.run(more, capture_output=True, text=True, env=env)
    assert second.returncode == 0, second.stderr
    assert "resumed from" in second.stdout and "(step 4, epoch 1)" in second.stdout, second.stdout

    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    training = [r for r in records if "loss" in r]
    assert [r["step"] for r in training] == list(range(1, 9))  # 4 steps per epoch, none repeated
    assert [r["step"] for r in records if "monitor/knn_acc" in r] == [4, 8]
    lr = load_config("simclr-digits").train.lr
    for r in training:  # record of step s: the lr of step index s-1 ...
        total = 4 if r["step"] <= 4 else 8  # ... over the first run's total, then over the new one
        assert math.isclose(r["lr"], lr * warmup_cosine(r["step"] - 1, total, 0), rel_tol=1e-9), r
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "finished" and status["step"] == 8 and status["epoch"] == 2
    assert "epochs: 2" in (run / "config.yaml").read_text()

    shrink = ["train", "--preset", "simclr-digits", "--out", str(run), *base[7:], "--set", "train.epochs=1"]
    assert main([*shrink, "--resume", "auto"]) == 2
    err = capsys.readouterr().err
    assert "past this config's budget of 4 steps" in err and "Traceback" not in err, err
