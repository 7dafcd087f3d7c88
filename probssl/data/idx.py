"""Reader for the IDX format of MNIST and Fashion-MNIST (optionally gzip-compressed).

Layout: a big-endian header of a 4-byte magic number ``0x0000TTDD`` (``TT`` the element type,
``DD`` the number of dimensions), then ``DD`` big-endian uint32 sizes, then the elements in
row-major order. MNIST uses unsigned bytes (``TT = 0x08``), so image files have magic 2051
(3 dims: count, rows, cols; 16-byte header) and label files magic 2049 (1 dim; 8-byte header).

Only the unsigned-byte type is supported: it is the only one the datasets use, and refusing the
others turns a mislabelled file into a clear error instead of garbage pixels.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .errors import DataError

__all__ = ["IMAGES_MAGIC", "LABELS_MAGIC", "read_idx", "read_idx_images", "read_idx_labels"]

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
_UBYTE = 0x08


def read_idx(path: str | os.PathLike, magic: int) -> np.ndarray:
    """Decode an unsigned-byte IDX file into a writable uint8 array of the header's shape.

    Files whose name ends in ``.gz`` are decompressed in memory first (the whole MNIST training
    set takes a fraction of a second: decompression plus one ``numpy.frombuffer``).

    Raises:
        DataError naming the file if it cannot be read or decompressed, its magic number is not
        ``magic``, or the number of bytes after the header differs from what the header promises.
    """
    path = Path(path)
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise DataError(f"IDX file {path} does not exist.") from exc
    except (OSError, EOFError, zlib.error) as exc:
        # gzip raises BadGzipFile (an OSError) for non-gzip data and EOFError when truncated.
        raise DataError(
            f"IDX file {path} could not be decompressed ({exc}); it is truncated or not a gzip "
            f"file. Delete it and download it again, or replace it with the official file."
        ) from exc

    expected_ndim = magic & 0xFF
    if len(raw) < 4 + 4 * expected_ndim:
        raise DataError(
            f"IDX file {path} is only {len(raw)} bytes long, shorter than its "
            f"{4 + 4 * expected_ndim}-byte header; it is truncated. Delete it and download it "
            f"again, or replace it with the official file."
        )
    (found,) = struct.unpack_from(">I", raw, 0)
    if found != magic:
        raise DataError(
            f"IDX file {path} has magic number {found} but {magic} was expected "
            f"({_kind(magic)}); it is not an MNIST-format {_kind(magic)} file, or it is "
            f"damaged. Check that the right file is at this path, or replace it with the "
            f"official file."
        )
    if (magic >> 8) & 0xFF != _UBYTE:  # pragma: no cover - guards misuse by callers
        raise ValueError(f"only unsigned-byte IDX files are supported, got magic {magic}")

    header = 4 + 4 * expected_ndim
    shape = struct.unpack_from(f">{expected_ndim}I", raw, 4)
    expected = int(np.prod(shape, dtype=np.int64))
    if len(raw) - header != expected:
        dims = " x ".join(str(d) for d in shape)
        raise DataError(
            f"IDX file {path} is damaged: its header declares {dims} = {expected} bytes of data "
            f"but {len(raw) - header} follow the header (truncated or garbled file). Delete it "
            f"and download it again, or replace it with the official file."
        )
    # frombuffer views the immutable bytes object; copy once so torch.from_numpy gets a
    # writable array it can share memory with.
    return np.frombuffer(raw, dtype=np.uint8, count=expected, offset=header).reshape(shape).copy()


def read_idx_images(path: str | os.PathLike) -> np.ndarray:
    """Images of an IDX image file (magic 2051) as uint8 ``[N, H, W]``."""
    return read_idx(path, IMAGES_MAGIC)


def read_idx_labels(path: str | os.PathLike) -> np.ndarray:
    """Labels of an IDX label file (magic 2049) as uint8 ``[N]``."""
    return read_idx(path, LABELS_MAGIC)


def _kind(magic: int) -> str:
    return {IMAGES_MAGIC: "image", LABELS_MAGIC: "label"}.get(magic, "IDX")
