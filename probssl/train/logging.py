"""Run-directory bookkeeping: the JSONL metrics log and the run status file."""

from __future__ import annotations

import json
import math
import os
import socket
import time
from pathlib import Path
from typing import Any


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep them readable rather than invalid
    return value


class MetricsLog:
    """Append-only JSON-lines log; each record gets a wall-clock timestamp."""

    def __init__(self, path: str | Path):
        self.path = Path(path)  # the folder is created by the first write, not before

    def write(self, record: dict[str, Any]) -> None:
        record = {"time": round(time.time(), 3), **{k: _jsonable(v) for k, v in record.items()}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def read(self) -> list[dict[str, Any]]:
        """Every complete record; a torn line (what SIGKILL or a full disk leaves) is skipped, not fatal."""
        if not self.path.exists():
            return []
        records = []
        for line in self.path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def truncate_after(self, step: int) -> None:
        """Drop records past ``step`` (a resumed run rewrites them)."""
        kept = [r for r in self.read() if r.get("step", 0) <= step]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        os.replace(tmp, self.path)

    def clear(self) -> None:
        """Drop every record (a run killed before its first checkpoint starts again from step 0)."""
        if self.path.exists():
            self.path.unlink()


def write_json_atomic(path: str | Path, obj: Any, indent: int | None = 1) -> None:
    """Write JSON through a temporary file and a rename: a reader sees the old file or the new one, never half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(obj, indent=indent, default=str))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk leaves neither half a file nor a stray temporary one
        raise


def read_json(path: str | Path) -> Any | None:
    """A JSON file, or None when it is missing or unreadable (torn, empty, not JSON)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


# A running trainer rewrites status.json at most this often (and after each checkpoint). One write is a small file
# and a rename, well under a millisecond locally but up to tens of milliseconds on a network filesystem; once per
# 5 s keeps it far below 1% of the loop while a heartbeat stays minutes younger than HEARTBEAT_TIMEOUT.
HEARTBEAT_SECONDS = 5.0

# A 'running' status whose heartbeat is older than this reads as dead, on any host. Generous because the trainer
# beats between steps only: one step, a checkpoint, an epoch's online monitors, the end-of-training density fit or
# a first compiled step can each take minutes on a slow machine, and hosts sharing a filesystem disagree on the
# time by seconds (their NFS attribute caches by up to a minute). Calling a live run dead misleads more than
# calling a dead one dead 11 minutes late.
HEARTBEAT_TIMEOUT = 600.0 + 12 * HEARTBEAT_SECONDS


def write_status(run_dir: str | Path, status: str, **fields: Any) -> None:
    record = {"status": status, "time": time.time(), "pid": os.getpid(), "host": socket.gethostname(), **fields}
    write_json_atomic(Path(run_dir) / "status.json", record)


class Heartbeat:
    """Keeps a training run's status.json current (status 'running', ``step``, ``epoch``, ``time``, ``heartbeat``).

    Without it status.json kept its start time and step 0 while a run trained, and a run on another host (or whose
    PID was reused) read as running forever. :meth:`beat` is meant to be called every step: it costs one clock
    read and writes at most once per ``period`` seconds (default :data:`HEARTBEAT_SECONDS`), unless forced.

    fields: what every write carries besides step and epoch (total_steps, the runtime record, ...).
    clock: the throttle's clock; monotonic, so a wall-clock jump (NTP) neither stops nor floods the writes.
    """

    def __init__(self, run_dir: str | Path, fields: dict[str, Any], period: float | None = None, clock=time.monotonic):
        self.run_dir = Path(run_dir)
        self.fields = {"started": time.time(), **fields}
        self.period = HEARTBEAT_SECONDS if period is None else period
        self.clock = clock
        self.last: float | None = None

    def beat(self, force: bool = False, **fields: Any) -> bool:
        """Write status.json if ``period`` has passed since the last write (or ``force``); True when it wrote."""
        now = self.clock()
        if not force and self.last is not None and 0 <= now - self.last < self.period:
            return False
        self.fields.update(fields)
        wall = time.time()
        write_status(self.run_dir, "running", **self.fields, time=wall, heartbeat=wall)
        self.last = now
        return True


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def read_status(run_dir: str | Path, now: float | None = None) -> dict[str, Any]:
    """status.json; a 'running' run that is not alive (SIGKILL, OOM, a crashed node) reads as 'dead', with the
    reason in ``dead_because`` (see :func:`_why_dead`). ``now``: the wall-clock time to judge the heartbeat at."""
    path = Path(run_dir) / "status.json"
    if not path.exists():
        return {"status": "unknown"}
    status = read_json(path)
    if not isinstance(status, dict):
        return {"status": "unreadable"}
    if status.get("status") == "running":
        reason = _why_dead(status, time.time() if now is None else now)
        if reason:
            status = {**status, "status": "dead", "dead_because": reason}
    return status


def _why_dead(status: dict[str, Any], now: float) -> str | None:
    """Why a 'running' status.json belongs to a dead run, or None when it may be alive.

    A PID is only meaningful on its own host, and may be reused there; the heartbeat (wall clock, written by
    :class:`Heartbeat`) works from any host sharing the folder. Files written before the heartbeat existed have
    none and are judged by the PID alone."""
    pid, host = status.get("pid"), status.get("host")
    if isinstance(pid, int) and host == socket.gethostname() and not process_alive(pid):
        return f"process {pid} is gone"
    beat = status.get("heartbeat")
    if isinstance(beat, (int, float)) and not isinstance(beat, bool) and now - beat > HEARTBEAT_TIMEOUT:
        return f"no heartbeat for {(now - beat) / 60:.0f} min (on {host})"
    return None


def trained_step(run_dir: str | Path) -> int | None:
    """The step a run has trained to, as far as an evaluation can follow: its latest checkpoint on disk (what
    ``probssl eval`` evaluates), else status.json's step (a run whose checkpoints were moved away)."""
    from probssl.train.checkpoint import latest_checkpoint_step  # imports torch: only when asked

    step = latest_checkpoint_step(Path(run_dir) / "checkpoints")
    if step is None:
        step = read_status(run_dir).get("step")
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def stale_evaluation(run_dir: str | Path, evaluation: dict[str, Any]) -> tuple[int, int] | None:
    """(evaluated step, trained step) when ``evaluation`` (eval.json) predates the run's latest checkpoint, else
    None. Shared by ``probssl runs`` and ``probssl report`` so they never disagree on what is stale."""
    run = evaluation.get("run")
    evaluated = (run if isinstance(run, dict) else {}).get("step", evaluation.get("step"))
    if not isinstance(evaluated, int) or isinstance(evaluated, bool):
        return None
    trained = trained_step(run_dir)
    return (evaluated, trained) if trained is not None and evaluated < trained else None


def list_runs(root: str | Path) -> list[dict[str, Any]]:
    """Every run directory below ``root`` (a folder with config.yaml), with status and latest metrics.

    An evaluation older than the run's latest checkpoint is marked stale; unreadable files never stop the listing.
    """
    import yaml

    rows = []
    for config_file in sorted(Path(root).glob("**/config.yaml")):
        run = config_file.parent
        try:
            config = yaml.safe_load(config_file.read_text()) or {}
        except (OSError, yaml.YAMLError):
            config = {}
        config = config if isinstance(config, dict) else {}
        status = read_status(run)
        last = next((r for r in reversed(MetricsLog(run / "metrics.jsonl").read()) if "loss" in r), {})
        rows.append(
            {
                "run": str(run),
                "method": (config.get("method") or {}).get("name", "–"),
                "dataset": (config.get("data") or {}).get("name", "–"),
                "status": status.get("status"),
                "step": status.get("step", "–"),
                "loss": round(last["loss"], 4) if isinstance(last.get("loss"), float) else last.get("loss", "–"),
                "linear_acc": _eval_cell(run),
            }
        )
    return rows


def _eval_cell(run: Path) -> str:
    evaluated = run / "eval.json"
    if not evaluated.exists():
        return "not evaluated"
    m = read_json(evaluated)
    if not isinstance(m, dict):
        return "eval.json unreadable"
    linear = m.get("linear_acc")
    text = f"{linear:.4f}" if isinstance(linear, float) else str(linear)
    stale = stale_evaluation(run, m)
    if stale:
        text += f" (stale: step {stale[0]}, trained to {stale[1]})"
    return text
