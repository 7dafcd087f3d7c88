"""Never lose a run: SIGKILL mid-epoch, resume, and end bit-identical to an uninterrupted run."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import torch

from probssl.train import latest_checkpoint, load_run

ARGS = [
    "--preset",
    "simclr-digits",
    "--set",
    "train.epochs=8",
    "--set",
    "train.batch_size=64",
    "--set",
    "data.train_subset=512",
    "--set",
    "train.checkpoint_every_steps=3",
    "--set",
    "train.log_every=1",
    "--set",
    "train.deterministic=true",
    "--set",
    "train.progress=false",
    "--set",
    "train.num_threads=1",
]


def _train(out, *extra):
    return [sys.executable, "-m", "probssl", "train", *ARGS, "--out", str(out), *extra]


def _losses(run):
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if "loss" in r]  # training records (the online monitors log their own)


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(_train(tmp_path / "full"), check=True, env=env, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        ckpt = latest_checkpoint(killed / "checkpoints")
        if ckpt is not None and int(ckpt.name.split("-")[1]) >= 12:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    state = json.loads((killed / "status.json").read_text())
    assert state["status"] == "running", "the run finished before it could be killed"

    subprocess.run(_train(killed, "--resume", "auto"), check=True, env=env, capture_output=True)
    _, full, s_full = load_run(tmp_path / "full")
    _, resumed, s_resumed = load_run(killed)
    assert s_full.step == s_resumed.step == 64
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert _losses(tmp_path / "full") == _losses(killed)


def test_torchrun_two_processes_train_and_checkpoint(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    cmd = [
        torchrun,
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={port}",
        "-m",
        "probssl",
        "train",
        "--preset",
        "vsimclr-digits",
        "--out",
        str(tmp_path / "ddp"),
        "--set",
        "train.epochs=1",
        "--set",
        "train.progress=false",
        "--set",
        "data.train_subset=256",
        "--set",
        "train.batch_size=64",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    status = json.loads((tmp_path / "ddp" / "status.json").read_text())
    assert status["status"] == "finished" and status["step"] == 4
    _, method, state = load_run(tmp_path / "ddp")
    assert state.extra["world_size"] == 2
    assert all(torch.isfinite(p).all() for p in method.parameters())


def test_sigterm_marks_the_run_interrupted_and_keeps_checkpoints(tmp_path):
    run = tmp_path / "term"
    proc = subprocess.Popen(
        _train(run),
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and latest_checkpoint(run / "checkpoints") is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-500:]
    assert "--resume auto" in err and "Traceback" not in err
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "interrupted"
    assert status["precision"] and status["precision_reason"] and "channels_last" in status  # how it trained
    assert latest_checkpoint(run / "checkpoints") is not None
