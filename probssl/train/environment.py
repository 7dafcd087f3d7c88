"""RUN/environment.json: what produced a run (versions, hardware, the precision and memory format and why)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from probssl.train.device import cpu_bf16_capability, cpu_flags

__all__ = ["environment_record", "git_commit", "with_previous"]


def git_commit() -> str | None:
    """The commit of the probssl checkout this code runs from (None when installed from a wheel)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _packages() -> dict[str, str]:
    found = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata.get("Name")
        if name:
            found[name.lower()] = dist.version
    return dict(sorted(found.items()))


def environment_record(runtime: dict[str, Any]) -> dict[str, Any]:
    """Everything about the process that could change a run's numbers or speed; ``runtime``: the trainer's choices."""
    import probssl

    cuda = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        cuda = {"device": props.name, "memory_gib": round(props.total_memory / 2**30, 1), "cuda": torch.version.cuda}
    cap = cpu_bf16_capability()
    return {
        "probssl": probssl.__version__,
        "git_commit": git_commit(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu": {**cap, "cores": os.cpu_count(), "all_flags": cpu_flags()},
        "cuda": cuda,
        "threads": torch.get_num_threads(),
        "runtime": runtime,
        "command": sys.argv,
        "packages": _packages(),
    }


def with_previous(record: dict[str, Any], path: Path, resumed_from_step: int) -> dict[str, Any]:
    """``record`` for a run that resumed at ``resumed_from_step`` (> 0), keeping the earlier sessions' records from
    ``path`` (an environment.json) under ``previous``, oldest first: a run resumed on another machine or torch says
    what produced each part of it. A fresh start (step 0) or an unreadable old file keeps nothing."""
    if resumed_from_step <= 0 or not path.exists():
        return record
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return record
    if not isinstance(old, dict):
        return record
    previous = old.pop("previous", [])
    previous = previous if isinstance(previous, list) else []
    return {**record, "resumed_from_step": resumed_from_step, "previous": [*previous, old]}
