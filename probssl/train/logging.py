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


def write_status(run_dir: str | Path, status: str, **fields: Any) -> None:
    record = {"status": status, "time": time.time(), "pid": os.getpid(), "host": socket.gethostname(), **fields}
    write_json_atomic(Path(run_dir) / "status.json", record)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def read_status(run_dir: str | Path) -> dict[str, Any]:
    """status.json; a 'running' run whose process is gone (SIGKILL, OOM, a crashed node) reads as 'dead'."""
    path = Path(run_dir) / "status.json"
    if not path.exists():
        return {"status": "unknown"}
    status = read_json(path)
    if not isinstance(status, dict):
        return {"status": "unreadable"}
    pid, host = status.get("pid"), status.get("host")
    if status.get("status") == "running" and isinstance(pid, int) and host == socket.gethostname():
        if not process_alive(pid):
            status = {**status, "status": "dead"}
    return status


def list_runs(root: str | Path) -> list[dict[str, Any]]:
    """Every run directory below ``root`` (a folder with config.yaml), with status and latest metrics.

    An evaluation older than the run's latest step is marked stale; unreadable files never stop the listing.
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
                "linear_acc": _eval_cell(run, status),
            }
        )
    return rows


def _eval_cell(run: Path, status: dict) -> str:
    evaluated = run / "eval.json"
    if not evaluated.exists():
        return "not evaluated"
    m = read_json(evaluated)
    if not isinstance(m, dict):
        return "eval.json unreadable"
    linear = m.get("linear_acc")
    text = f"{linear:.4f}" if isinstance(linear, float) else str(linear)
    step = (m.get("run") or {}).get("step", m.get("step"))
    if isinstance(step, int) and isinstance(status.get("step"), int) and step < status["step"]:
        text += f" (stale: step {step})"
    return text
