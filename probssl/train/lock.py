"""One writer per run directory: a PID lock file with a stale-lock rule."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from probssl.train.logging import process_alive, read_json

__all__ = ["RunInUse", "RunLock"]

LOCK = ".lock"


class RunInUse(RuntimeError):
    """Another live process is training into the same run directory."""


class RunLock:
    """``RUN/.lock`` holding the owner's pid and host, created exclusively.

    A lock is stale, and is taken over, when its process is gone (same host) or it is unreadable; the same
    process may take its own lock again (a second Trainer on one folder in one session). Released by
    :meth:`release` (the trainer does so when ``fit`` ends, however it ends).
    """

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / LOCK
        self.held = False

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname()})
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._check_owner()
                self.path.unlink(missing_ok=True)  # stale or our own: replace it
                continue
            with os.fdopen(fd, "w") as f:
                f.write(record)
            self.held = True
            return
        raise RunInUse(f"could not lock {self.path.parent} (another process keeps creating {self.path.name})")

    def _check_owner(self) -> None:
        owner = read_json(self.path)
        if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int):
            return  # unreadable: stale
        pid, host = owner["pid"], owner.get("host")
        if pid == os.getpid() and host == socket.gethostname():
            return
        if host != socket.gethostname() or process_alive(pid):
            raise RunInUse(
                f"{self.path.parent} is in use by process {pid} on {host}. Wait for it to finish, stop it, or "
                f"choose another --out directory (if that process is gone, delete {self.path})."
            )

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False
