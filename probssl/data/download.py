"""Checksum verification and atomic, checksum-checked downloads.

Everything here is stdlib-only (``hashlib``, ``urllib``) so the data layer works on minimal
installs. Downloads are streamed into a temporary file next to the destination and moved into
place with :func:`os.replace` only once the MD5 matches, so an interrupted or corrupted
download never leaves a file at the destination that a later run would trust.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from .errors import DataError

__all__ = ["md5sum", "verify_file", "download_file"]

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20
# Some hosts answer urllib's default "Python-urllib/x.y" agent with 403 Forbidden.
_USER_AGENT = "probssl-data/0.1"


def md5sum(path: str | os.PathLike) -> str:
    """Hex MD5 digest of a file, read in 1 MiB chunks (constant memory)."""
    # MD5 is used as a published integrity fingerprint, not for security; saying so keeps
    # hashlib working on FIPS-restricted Python builds.
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: str | os.PathLike, md5: str) -> None:
    """Raise :class:`DataError` unless ``path`` exists and its MD5 equals ``md5``.

    The file is never modified or deleted: a corrupt file may be the user's only copy, so the
    message tells them how to repair it instead.
    """
    path = Path(path)
    md5 = md5.lower()
    if not path.is_file():
        raise DataError(
            f"Data file {path} does not exist (expected MD5 {md5}). Place the official file at "
            f"that path, or call the loader with download=True to fetch it."
        )
    try:
        actual = md5sum(path)
    except OSError as exc:
        raise DataError(f"Data file {path} could not be read ({exc}); check its permissions.") from exc
    if actual != md5:
        raise DataError(
            f"Data file {path} is corrupt or not the official file: its MD5 is {actual} but the "
            f"expected MD5 is {md5}. It was probably truncated by an interrupted copy or "
            f"download. Delete it so that it is downloaded again (download=True), or replace it "
            f"with the official file."
        )


def download_file(urls: Sequence[str], dest: str | os.PathLike, md5: str, *, timeout: float = 30.0) -> Path:
    """Download ``dest`` from the first of ``urls`` that serves a file with MD5 ``md5``.

    Each URL is tried in turn (any scheme :func:`urllib.request.urlopen` supports, including
    ``file://``). The body is streamed into a temporary file in ``dest``'s directory, its MD5
    checked, and only then renamed onto ``dest`` atomically; a failed, interrupted or corrupt
    download leaves nothing at ``dest``. A URL that serves the wrong bytes is treated like a
    broken one and the next URL is tried.

    If ``dest`` already exists with the right MD5 it is returned without touching the network.
    If it exists with the wrong MD5, :class:`DataError` is raised rather than overwriting it:
    the user may have put it there, and should decide whether to delete it.

    Args:
        urls: candidate URLs, most trusted first.
        dest: final path of the file; parent directories are created.
        md5: expected hex MD5 of the file.
        timeout: socket timeout in seconds for each connection attempt and read.

    Returns:
        ``dest`` as a :class:`~pathlib.Path`.

    Raises:
        DataError: every URL failed, or ``dest`` exists but is corrupt.
    """
    dest = Path(dest)
    md5 = md5.lower()
    if dest.exists():
        verify_file(dest, md5)
        return dest
    if not urls:
        raise DataError(
            f"Data file {dest} is missing and no download URL is known for it (expected MD5 "
            f"{md5}); place the official file at that path by hand."
        )
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"Cannot create the data directory {dest.parent} to download {dest.name} into "
            f"({exc}). Choose a writable data directory (argument data_dir or the environment "
            f"variable PROBSSL_DATA)."
        ) from exc

    failures: list[str] = []
    for url in urls:
        logger.info("downloading %s from %s", dest.name, url)
        try:
            actual = _fetch_to(url, dest, md5, timeout)
        except (OSError, ValueError) as exc:
            # URLError, HTTPError, timeouts and disk errors are OSErrors; ValueError covers
            # malformed URLs. Anything else (e.g. KeyboardInterrupt) propagates untouched.
            failures.append(f"{url} ({_describe(exc)})")
            continue
        if actual is None:
            return dest
        failures.append(f"{url} (served a file with MD5 {actual})")

    raise DataError(
        f"Could not download {dest.name} (expected MD5 {md5}). Tried: {'; '.join(failures)}. "
        f"If this machine has no internet access, download the file on another machine from "
        f"one of those URLs, check that its MD5 is {md5}, and place it at {dest} (or point "
        f"the environment variable PROBSSL_DATA at a directory that already holds it)."
    )


def _fetch_to(url: str, dest: Path, md5: str, timeout: float) -> str | None:
    """Stream ``url`` to ``dest`` atomically; return None on success, else the wrong MD5 seen."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as resp:
            for chunk in iter(lambda: resp.read(_CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
        actual = digest.hexdigest()
        if actual != md5:
            return actual
        os.replace(tmp, dest)
        return None
    finally:
        # After a successful os.replace the temporary name no longer exists.
        tmp.unlink(missing_ok=True)


def _describe(exc: BaseException) -> str:
    """Short one-line reason for a failed attempt, for the error paragraph."""
    if isinstance(exc, urllib.error.HTTPError):
        text = f"HTTP {exc.code} {exc.reason}"
    elif isinstance(exc, urllib.error.URLError):
        text = str(exc.reason)
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())
