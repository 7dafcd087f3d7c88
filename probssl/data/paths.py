"""Where datasets live on disk."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV_VAR", "DATA_ENV_VAR", "cache_dir", "resolve_data_dir"]

DATA_ENV_VAR = "PROBSSL_DATA"
CACHE_ENV_VAR = "PROBSSL_CACHE"  # a directory; else $XDG_CACHE_HOME/probssl, else ~/.cache/probssl


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The root directory under which datasets are stored, as an absolute path.

    Precedence: the explicit ``data_dir`` argument, else the environment variable
    ``$PROBSSL_DATA``, else a per-user cache directory: ``$XDG_CACHE_HOME/probssl`` when that
    variable holds an absolute path (as the XDG spec requires), otherwise ``~/.cache/probssl``.
    Empty strings count as unset. ``~`` is expanded. The directory is not created here: only a
    download needs it to exist, and read-only shared copies must not be written to.
    """
    if data_dir is not None and str(data_dir) != "":
        root = Path(data_dir)
    elif os.environ.get(DATA_ENV_VAR):
        root = Path(os.environ[DATA_ENV_VAR])
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        cache = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
        root = cache / "probssl"
    return root.expanduser().absolute()


def cache_dir() -> Path:
    """Where probssl keeps what it can recompute (the precision probe, archive indexes): ``$PROBSSL_CACHE``, else
    ``$XDG_CACHE_HOME/probssl`` when that is absolute, else ``~/.cache/probssl``. Not created here."""
    root = os.environ.get(CACHE_ENV_VAR)
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        root = str(Path(xdg) / "probssl") if os.path.isabs(xdg) else str(Path.home() / ".cache" / "probssl")
    return Path(root).expanduser()
