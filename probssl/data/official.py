"""Shared pieces of the readers of large official datasets (STL-10, SVHN, Tiny-ImageNet, Caltech-256, CelebA,
ImageNet): fetching one MD5-checked official file, extracting named members of an archive atomically, and
images stored inside a zip archive read in place (:class:`ZipMemberRef`).

A zip member is read from its byte range like a tar shard member (:class:`~probssl.data.members.MemberRef`):
the local header at its offset gives where the data starts, and the data is inflated when the member is
deflated. Nothing is extracted to disk, so a member's name can never write outside anything.
"""

from __future__ import annotations

import os
import struct
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from .download import download_file, md5sum, verify_file
from .errors import DataError
from .members import MemberRef

__all__ = ["ZipMemberRef", "extract_members", "fetch_official", "safe_member_name", "verify_once", "zip_members"]

# path -> (size, mtime_ns, md5) of files whose MD5 was checked in this process: a multi-GB archive is hashed once
# per process (and again whenever it is rewritten), not on every load.
_VERIFIED: dict[str, tuple[int, int, str]] = {}


def verify_once(path: str | os.PathLike, md5: str) -> None:
    """:func:`~probssl.data.download.verify_file`, skipped when this process already verified the unchanged file.

    Raises:
        DataError naming the file if it is missing or its MD5 is not ``md5``.
    """
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        st = None
    key = str(path.absolute())
    if st is not None and _VERIFIED.get(key) == (st.st_size, st.st_mtime_ns, md5.lower()):
        return
    verify_file(path, md5)
    if st is not None:
        _VERIFIED[key] = (st.st_size, st.st_mtime_ns, md5.lower())


def fetch_official(
    root: Path, relpath: str, md5: str, urls: tuple[str, ...], *, download: bool, manual: str = ""
) -> Path:
    """Path of the MD5-verified official file ``root / relpath``, downloaded from ``urls`` when missing and allowed.

    ``manual``: how to obtain the file by hand (said when it is missing and cannot be downloaded). An existing
    file is never replaced, even when corrupt; the error says how to repair it.

    Raises:
        DataError naming the file, its MD5 and where to get it, if it is missing (and download is False or no
        URL is known), cannot be downloaded, or is corrupt.
    """
    path = root / relpath
    if not path.exists():
        if not download or not urls:
            where = manual or f"download it from {' or '.join(urls)}"
            reason = "downloading is disabled (download=False)" if urls else "it cannot be downloaded automatically"
            raise DataError(
                f"Data file {path} does not exist and {reason}. Place the official file there (MD5 {md5}): {where}. "
                f"Or point data_dir or the environment variable PROBSSL_DATA at a directory that holds {relpath}."
            )
        download_file(urls, path, md5)
    verify_once(path, md5)
    return path


def safe_member_name(name: str, archive: Path) -> str:
    """A member name without a leading ``./``; absolute names and ``..`` are refused (not an official archive)."""
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts:
        raise DataError(f"Archive {archive} has a member with an unsafe path, {name!r}; it is not the official file.")
    return "/".join(p for p in pure.parts if p != ".")


def extract_members(archive: Path, wanted: dict[str, Path], md5s: dict[str, str]) -> None:
    """Write the tar (any compression) members ``wanted`` (member name -> destination) to their destinations.

    Each member goes to a temporary file beside its destination, is MD5-checked against ``md5s[member]`` (a member
    without an official MD5, absent from ``md5s``, is checked by its reader instead) and only then renamed onto it, so an interrupted extraction never leaves a file a later run would trust. Members are
    read in one front-to-back pass (a gzip stream is decompressed once).

    Raises:
        DataError naming the archive and member if it is unreadable, lacks a member, or a member has the wrong MD5.
    """
    todo = dict(wanted)
    try:
        with tarfile.open(archive, mode="r|*") as tar:
            for member in tar:
                name = safe_member_name(member.name, archive)
                if name in todo and member.isfile():
                    _extract_one(tar, member, todo.pop(name), md5s.get(name), archive)
                if not todo:
                    break
    except DataError:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"Archive {archive} could not be read ({exc}); it is truncated or not the official file. Delete it and "
            "download it again, or replace it with the official file."
        ) from exc
    if todo:
        raise DataError(
            f"Archive {archive} lacks the member(s) {', '.join(sorted(todo))} of the official archive; replace it "
            "with the official file."
        )


def _extract_one(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path, md5: str | None, archive: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        source = tar.extractfile(member)
        assert source is not None  # a regular file always has a payload
        with os.fdopen(fd, "wb") as out:
            for chunk in iter(lambda: source.read(1 << 20), b""):
                out.write(chunk)
        actual = md5sum(tmp) if md5 is not None else None
        if md5 is not None and actual != md5.lower():
            raise DataError(
                f"Archive {archive}: member {member.name} has MD5 {actual}, not the official {md5}; the archive is "
                "not the official one. Replace it with the official file."
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


class ZipMemberRef(MemberRef):
    """``"ZIP:MEMBER"``: one member of a zip archive, read (and inflated if deflated) from its byte range.

    ``offset`` is the member's local header offset, ``size`` its compressed size; ``method`` is 0 (stored) or
    8 (deflated), the two methods of the official archives.
    """

    method: int
    raw_size: int

    def __new__(cls, archive, member: str, offset: int, size: int, method: int = 0, raw_size: int = -1):
        ref = super().__new__(cls, archive, member, offset, size)
        ref.method, ref.raw_size = int(method), int(raw_size)
        return ref

    def __getnewargs__(self) -> tuple:
        return (*super().__getnewargs__(), self.method, self.raw_size)

    def read(self) -> bytes:
        with open(self.shard, "rb") as f:
            f.seek(self.offset)
            header = f.read(30)
            if len(header) != 30 or header[:4] != b"PK\x03\x04":
                raise OSError(f"{self.shard} has no zip member header where {self} should start (damaged archive)")
            name_len, extra_len = struct.unpack("<HH", header[26:30])
            f.seek(self.offset + 30 + name_len + extra_len)
            data = f.read(self.size)
        if len(data) != self.size:
            raise OSError(f"{self.shard} ends before member {self} (truncated archive)")
        if self.method == zipfile.ZIP_STORED:
            return data
        try:
            raw = zlib.decompress(data, -15)  # raw deflate stream, as zip stores it
        except zlib.error as exc:
            raise OSError(f"zip member {self} could not be inflated ({exc})") from exc
        if self.raw_size >= 0 and len(raw) != self.raw_size:
            raise OSError(f"zip member {self} inflated to {len(raw)} bytes, not {self.raw_size} (damaged archive)")
        return raw


def zip_members(archive: Path) -> dict[str, ZipMemberRef]:
    """Every regular member of a zip archive by its (safe) name; only the central directory is read.

    Raises:
        DataError naming the archive if it is not a readable zip, has an unsafe member name, or uses a
        compression other than stored / deflated.
    """
    try:
        with zipfile.ZipFile(archive) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(
            f"Archive {archive} could not be read as a zip file ({exc}); it is truncated or not the official file. "
            "Delete it and download it again, or replace it with the official file."
        ) from exc
    found = {}
    for info in infos:
        if info.is_dir():
            continue
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise DataError(f"Archive {archive}: member {info.filename} uses an unsupported compression.")
        name = safe_member_name(info.filename, archive)
        found[name] = ZipMemberRef(
            archive, name, info.header_offset, info.compress_size, info.compress_type, info.file_size
        )
    return found
