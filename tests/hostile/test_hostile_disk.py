"""A full disk and a read-only output folder (issue 17): the earlier checkpoints survive, no temporary folder is
left, one clear line (no traceback), status 'failed' -- and a read-only output is refused before any work."""

import errno
import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from probssl.cli.main import main
from probssl.config import load_config
from probssl.train import Trainer, list_checkpoints, load_checkpoint

# 8 steps of 32 images, a checkpoint every 2 steps
SMALL = ["train.epochs=1", "data.train_subset=256", "train.batch_size=32", "train.progress=false"]
SET_SMALL = [arg for item in SMALL for arg in ("--set", item)]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _one_clean_line(err: str) -> str:
    err = err.strip()
    assert "Traceback" not in err and err.count("\n") == 0, err
    assert err.startswith("probssl: error: "), err
    return err


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _train_cmd(out: Path, *extra: str) -> list[str]:
    return ["train", "--preset", "simclr-digits", "--out", str(out), *SET_SMALL, *extra]


def test_a_full_disk_during_a_checkpoint_keeps_the_earlier_ones(tmp_path, capsys, monkeypatch):
    """In process: the third checkpoint's tensor write fails with ENOSPC."""
    import probssl.train.checkpoint as checkpoint

    real, calls = checkpoint.save_file, []

    def full_disk(tensors, filename, *args, **kwargs):
        calls.append(filename)
        if len(calls) == 3:
            Path(filename).write_bytes(b"partial")  # what a full disk leaves: part of the file
            raise OSError(errno.ENOSPC, "No space left on device", filename)
        return real(tensors, filename, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "save_file", full_disk)
    run = tmp_path / "run"
    assert main(_train_cmd(run, "--set", "train.checkpoint_every_steps=2")) == 2
    err = _one_clean_line(capsys.readouterr().err)
    assert "No space left on device" in err and "free some disk space" in err and "--resume auto" in err, err
    assert "Kept: step-00000002, step-00000004" in err, err
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == ["step-00000002", "step-00000004"]
    assert not list((run / "checkpoints").glob(".tmp-step-*"))
    assert load_checkpoint(run / "checkpoints" / "step-00000004").step == 4
    assert json.loads((run / "status.json").read_text())["status"] == "failed"


@contextmanager
def _tmpfs(path: Path, size: str):
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_really_full_disk_during_training_then_resume(tmp_path):
    """For real: `probssl train` on a 3.2 MB tmpfs, where each checkpoint takes 1.3 MB (weights + Adam moments) and
    two are kept -- the third one cannot be written. After more space, --resume auto finishes the run."""
    with _tmpfs(tmp_path / "disk", "3200k") as disk:
        run = disk / "run"
        cmd = [sys.executable, "-m", "probssl", *_train_cmd(run, "--set", "train.checkpoint_every_steps=2")]
        result = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)
        assert result.returncode == 2, result.stdout + result.stderr
        err = _one_clean_line(result.stderr)
        assert "No space left on device" in err and "Kept: step-00000002, step-00000004" in err, err
        assert [p.name for p in list_checkpoints(run / "checkpoints")] == ["step-00000002", "step-00000004"]
        assert not list((run / "checkpoints").glob(".tmp-step-*"))
        assert load_checkpoint(run / "checkpoints" / "step-00000004").step == 4
        assert json.loads((run / "status.json").read_text())["status"] == "failed"

        subprocess.run(["mount", "-o", "remount,size=20m", str(disk)], check=True)
        result = subprocess.run([*cmd, "--resume", "auto"], capture_output=True, text=True, env=ENV, timeout=300)
        assert result.returncode == 0, result.stderr
        assert "resumed from" in result.stdout and "step 4" in result.stdout
        assert json.loads((run / "status.json").read_text())["status"] == "finished"
        steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert steps == sorted(steps) and steps[-1] == 8


@contextmanager
def _read_only(folder: Path):
    """``folder`` made read-only: a read-only bind mount as root (root ignores permission bits), else chmod."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")] if p.is_dir()}
        for p in modes:
            p.chmod(0o555)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    bind = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True)
    if bind.returncode != 0:
        pytest.skip(f"cannot bind-mount a folder read-only here: {bind.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True, capture_output=True)
        yield
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("trained") / "run"
    Trainer(load_config("simclr-digits", overrides=SMALL), run).fit()
    return run


def test_a_read_only_output_folder_is_refused_before_any_work(trained, tmp_path, capsys):
    """train (new run and --resume auto), eval, report and demo on a read-only folder: exit 2, one line naming the
    folder and the cause, and nothing of the run changed."""
    ro = tmp_path / "ro"
    ro.mkdir()
    shutil.copytree(trained, ro / "run")
    before = _tree(ro)
    cases = [
        (_train_cmd(ro / "new"), ro),
        (_train_cmd(ro / "run", "--resume", "auto"), ro / "run"),
        (["eval", str(ro / "run"), "--quick"], ro / "run"),
        (["report", str(ro / "run"), "--out", str(ro / "report")], ro),
        (["demo", "--out", str(ro / "demo"), "--epochs", "1"], ro),
    ]
    with _read_only(ro):
        for argv, folder in cases:
            assert main(argv) == 2, argv
            captured = capsys.readouterr()
            err = _one_clean_line(captured.err)
            assert f"{folder} is " in err and ("read-only" in err or "not writable" in err), (argv, err)
            assert "evaluating" not in captured.out and "[demo] training" not in captured.out, captured.out
    assert _tree(ro) == before


def test_a_read_only_run_from_the_real_command_line(trained, tmp_path):
    ro = tmp_path / "ro"
    shutil.copytree(trained, ro)
    with _read_only(ro):
        result = subprocess.run(
            [sys.executable, "-m", "probssl", "eval", str(ro), "--quick"], capture_output=True, text=True, env=ENV
        )
    assert result.returncode == 2, result.stderr
    assert "eval.json" in _one_clean_line(result.stderr) and not (ro / "eval.json").exists()


def test_a_json_file_that_cannot_be_written_leaves_the_old_one_and_no_temporary_file(tmp_path, monkeypatch):
    from probssl.train.logging import write_json_atomic

    write_json_atomic(tmp_path / "status.json", {"status": "running"})

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError, match="No space left"):
        write_json_atomic(tmp_path / "status.json", {"status": "failed"})
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]
    assert json.loads((tmp_path / "status.json").read_text()) == {"status": "running"}
