"""Images stored inside tar shards, named like files: ``SHARD.tar:member/name.jpg``.

A :class:`MemberRef` is a ``str`` (so it prints, hashes and pickles like the file paths of a folder dataset, and
every error names it) that also knows where the member's bytes lie in its shard. :func:`open_image_source` turns
either into what Pillow opens: the path itself, or the member's bytes. Nothing is extracted to disk, so a
member's name can never write outside anything (no path traversal), and links inside a shard are never followed.
"""

from __future__ import annotations

import io
import os

__all__ = ["MemberRef", "open_image_source"]


class MemberRef(str):
    """``"SHARD:MEMBER"``, with ``shard`` (the tar file's path), ``offset`` and ``size`` (its data's bytes)."""

    shard: str
    offset: int
    size: int

    def __new__(cls, shard: str | os.PathLike, member: str, offset: int, size: int) -> MemberRef:
        ref = super().__new__(cls, f"{os.fspath(shard)}:{member}")
        ref.shard, ref.offset, ref.size = os.fspath(shard), int(offset), int(size)
        return ref

    def __getnewargs__(self) -> tuple:
        return (self.shard, str(self)[len(self.shard) + 1 :], self.offset, self.size)

    def read(self) -> bytes:
        with open(self.shard, "rb") as f:
            f.seek(self.offset)
            data = f.read(self.size)
        if len(data) != self.size:
            raise OSError(f"{self.shard} ends before member {self} (truncated shard)")
        return data


def open_image_source(path: str) -> str | io.BytesIO:
    """What ``PIL.Image.open`` should read for ``path``: the file, or the bytes of a shard member."""
    return io.BytesIO(path.read()) if isinstance(path, MemberRef) else path
