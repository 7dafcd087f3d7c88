"""Run-directory bookkeeping: the JSONL metrics log and the run status file."""

from __future__ import annotations

import json
import math
import os
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
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        record = {"time": round(time.time(), 3), **{k: _jsonable(v) for k, v in record.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def truncate_after(self, step: int) -> None:
        """Drop records past ``step`` (a resumed run rewrites them)."""
        kept = [r for r in self.read() if r.get("step", 0) <= step]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        os.replace(tmp, self.path)


def write_status(run_dir: str | Path, status: str, **fields: Any) -> None:
    path = Path(run_dir) / "status.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"status": status, "time": time.time(), **fields}, indent=1))
    os.replace(tmp, path)


def read_status(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / "status.json"
    return json.loads(path.read_text()) if path.exists() else {"status": "unknown"}


def list_runs(root: str | Path) -> list[dict[str, Any]]:
    """Every run directory below ``root`` (a folder with config.yaml), with status and latest metrics."""
    import yaml

    rows = []
    for config_file in sorted(Path(root).glob("**/config.yaml")):
        run = config_file.parent
        config = yaml.safe_load(config_file.read_text()) or {}
        status = read_status(run)
        last = next((r for r in reversed(MetricsLog(run / "metrics.jsonl").read()) if "loss" in r), {})
        evaluated = run / "eval.json"
        linear = json.loads(evaluated.read_text()).get("linear_acc") if evaluated.exists() else None
        rows.append(
            {
                "run": str(run),
                "method": config.get("method", {}).get("name"),
                "dataset": config.get("data", {}).get("name"),
                "status": status.get("status"),
                "step": status.get("step"),
                "loss": round(last["loss"], 4) if isinstance(last.get("loss"), float) else last.get("loss"),
                "linear_acc": round(linear, 4) if isinstance(linear, float) else linear,
            }
        )
    return rows
