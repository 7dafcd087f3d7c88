"""status.json tells a training run from a dead one (issue #14): the trainer's heartbeat keeps its step and time
current, and ``read_status`` calls a 'running' run dead when its process is gone (same host) or its heartbeat is
older than HEARTBEAT_TIMEOUT (any host)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

import probssl.train.logging as run_logging
from probssl.cli.main import main
from probssl.config import load_config
from probssl.train import Trainer, read_status
from probssl.train.logging import HEARTBEAT_SECONDS, HEARTBEAT_TIMEOUT, Heartbeat

# 4 steps of 64 images per epoch, a checkpoint every 2 steps
SMALL = [
    "train.epochs=2",
    "data.train_subset=256",
    "train.batch_size=64",
    "train.checkpoint_every_steps=2",
    "train.progress=false",
]


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_the_heartbeat_writes_at_most_once_per_period_unless_forced(tmp_path):
    clock = FakeClock()
    beat = Heartbeat(tmp_path, {"total_steps": 10}, period=5.0, clock=clock)
    status = lambda: json.loads((tmp_path / "status.json").read_text())  # noqa: E731
    assert beat.beat(step=0, epoch=0)  # the first beat always writes
    assert status()["step"] == 0 and status()["total_steps"] == 10 and status()["status"] == "running"
    clock.now += 4.9
    assert not beat.beat(step=1, epoch=0)
    assert status()["step"] == 0  # throttled: the file is untouched
    assert beat.beat(force=True, step=2, epoch=0)  # after a checkpoint
    assert status()["step"] == 2
    clock.now += 5.0
    assert beat.beat(step=3, epoch=1)
    assert status()["step"] == 3 and status()["epoch"] == 1
    clock.now -= 60  # a clock going backwards must not stop the heartbeat
    assert beat.beat(step=4, epoch=1)
    written = status()
    assert written["time"] == written["heartbeat"] >= written["started"] and written["pid"] == os.getpid()
    assert HEARTBEAT_TIMEOUT > 10 * HEARTBEAT_SECONDS  # many missed beats before a run is called dead


@pytest.mark.parametrize("period", [None, 0.0], ids=["default-period", "every-step"])
def test_status_json_follows_a_training_run(tmp_path, monkeypatch, period):
    """Read status.json after every step of a real run: 'running', its step at most one step behind and at least at
    the last checkpoint (forced beats), never going back; its time moves on; at the end 'finished' at the last step."""
    if period is not None:
        monkeypatch.setattr(run_logging, "HEARTBEAT_SECONDS", period)
    seen = []

    class Watch:
        def on_step_end(self, trainer, stats):
            seen.append((trainer.step, json.loads((trainer.run_dir / "status.json").read_text())))

    run = tmp_path / "run"
    Trainer(load_config("simclr-digits", overrides=SMALL), run, callbacks=[Watch()]).fit()
    assert [k for k, _ in seen] == list(range(1, 9))
    for k, status in seen:
        last_checkpoint = (k - 1) - (k - 1) % 2
        assert status["status"] == "running" and status["total_steps"] == 8
        assert last_checkpoint <= status["step"] <= k - 1, (k, status["step"])
        if period == 0.0:
            assert status["step"] == k - 1 and status["epoch"] == (k - 1) // 4
    steps = [s["step"] for _, s in seen]
    times = [s["heartbeat"] for _, s in seen]
    assert steps == sorted(steps) and steps[-1] >= 6
    assert times == sorted(times) and times[-1] > seen[0][1]["started"]
    final = read_status(run)
    assert final["status"] == "finished" and final["step"] == 8


def _status(run_dir, **fields):
    record = {"status": "running", "step": 3, "pid": os.getpid(), "host": socket.gethostname(), **fields}
    (run_dir / "status.json").write_text(json.dumps(record))
    return read_status(run_dir)["status"]


def test_liveness_by_pid_and_heartbeat(tmp_path):
    now = time.time()
    old = now - HEARTBEAT_TIMEOUT - 1
    # a live PID on this host (this process) but no beat for longer than the timeout: hung, or a reused PID
    assert _status(tmp_path, heartbeat=old) == "dead"
    assert "no heartbeat" in read_status(tmp_path)["dead_because"]
    assert _status(tmp_path, heartbeat=old, host="other-node") == "dead"
    # another host: its PID means nothing here, the heartbeat decides
    assert _status(tmp_path, heartbeat=now - 30, host="other-node") == "running"
    assert _status(tmp_path, heartbeat=now + 5, host="other-node") == "running"  # its clock a little ahead of ours
    assert _status(tmp_path, heartbeat=now, pid=_gone_pid()) == "dead"  # fresh beat, but the process is gone
    assert _status(tmp_path, heartbeat=now) == "running"
    # status.json files written before the heartbeat: the PID check alone, as before
    assert _status(tmp_path) == "running"
    assert _status(tmp_path, pid=_gone_pid()) == "dead"
    assert _status(tmp_path, host="other-node") == "running"
    # a finished run is finished however old
    assert _status(tmp_path, status="finished", heartbeat=old, pid=_gone_pid()) == "finished"


def test_read_status_judges_the_heartbeat_at_a_given_time(tmp_path):
    (tmp_path / "status.json").write_text(json.dumps({"status": "running", "host": "other-node", "heartbeat": 1000.0}))
    assert read_status(tmp_path, now=1000.0 + HEARTBEAT_TIMEOUT)["status"] == "running"
    assert read_status(tmp_path, now=1000.0 + HEARTBEAT_TIMEOUT + 1)["status"] == "dead"


def _gone_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_sigkilled_training_run_reads_as_dead(tmp_path, capsys):
    """For real: `probssl train` killed with SIGKILL mid-training, once status.json shows it running past step 0."""
    run = tmp_path / "run"
    args = ["--preset", "simclr-digits", "--out", str(run)]
    for item in ["train.epochs=200", "data.train_subset=512", "train.batch_size=64", "train.checkpoint_every_steps=3"]:
        args += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "probssl", "train", *args, "--set", "train.progress=false"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, status = time.time() + 180, {}
        while time.time() < deadline and proc.poll() is None:
            status = read_status(run)
            if status.get("status") == "running" and status.get("step", 0) > 0:
                break
            time.sleep(0.05)
        assert status.get("status") == "running" and status["step"] > 0, status
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert json.loads((run / "status.json").read_text())["status"] == "running"  # what the dead process left
    status = read_status(run)
    assert status["status"] == "dead" and f"process {proc.pid} is gone" in status["dead_because"]
    capsys.readouterr()
    assert main(["runs", str(tmp_path)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if str(run) in line)
    assert " dead " in row and "running" not in row
