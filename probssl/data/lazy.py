"""Images decoded from their files when indexed: datasets larger than memory (``data.in_memory``).

An in-memory :class:`~probssl.data.ImageDataset` holds one uint8 tensor ``[N, C, H, W]``. A
:class:`LazyImages` stands in for that tensor where the decoded pixels would not fit (or where
``data.in_memory: false`` asks for it): it knows every file and the common decoded shape, and decodes
only the rows it is indexed with. During training, :mod:`probssl.train.feed` reads it with a torch
``DataLoader`` whose workers decode the coming batches ahead of the step; everywhere else (evaluation,
monitors, the epistemic density fit) it is read in batches, ``images[i : i + batch]``, like the tensor.

Decoding is deterministic (the same file, size and resize rule give the same bytes), so a lazy split
yields exactly the pixels the in-memory split would hold, and training on either gives the same run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from probssl.data.errors import DataError

IN_MEMORY_CHOICES = ("auto", True, False)
# auto keeps a dataset in memory while its decoded pixels take at most this share of the memory available
# when it is loaded; the rest is left to the model, the optimiser, evaluation and the system.
AUTO_MEMORY_SHARE = 0.5
# in_memory: true refuses a dataset above this share (it would likely be killed by the kernel later).
MAX_MEMORY_SHARE = 0.8


class LazyImages:
    """uint8 images ``[N, C, H, W]`` decoded from ``paths`` when indexed.

    paths: one file per row. shape: ``(C, H, W)`` of every decoded image. decode: ``path -> uint8 [H, W, C]``
    numpy array of exactly that shape (a picklable, module-level function or ``functools.partial``: the
    DataLoader workers receive it). device: where indexed batches are returned (decoding is on the CPU).

    It behaves like the read-only tensor of an in-memory dataset for what probssl does with one: ``len``,
    ``.shape``, ``.dtype``, ``.device``, ``dim()``, ``.to(device)`` (a lazy view returning batches there),
    indexing by int, slice, list, int64 or bool tensor (a real uint8 tensor ``[B, C, H, W]``, decoded now by
    a few threads: Pillow releases the GIL while decoding), and :meth:`take` (the rows as another
    ``LazyImages``, nothing decoded). Anything else (``.float()``, arithmetic) is an AttributeError: a
    larger-than-memory set must be read in batches.
    """

    dtype = torch.uint8

    def __init__(
        self,
        paths: Sequence[str],
        shape: tuple[int, int, int],
        decode: Callable[[str], np.ndarray],
        device: torch.device | str = "cpu",
        threads: int | None = None,
    ):
        self.paths = list(paths)
        self.image_shape = tuple(int(s) for s in shape)
        self.decode = decode
        self.device = torch.device(device)
        self.threads = threads or min(4, os.cpu_count() or 1)
        self._pool: ThreadPoolExecutor | None = None

    # -- the tensor-like surface
    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.paths), *self.image_shape))

    def dim(self) -> int:
        return 4

    def is_contiguous(self) -> bool:
        return True

    def contiguous(self) -> LazyImages:
        return self

    def numel(self) -> int:
        return int(np.prod(self.shape))

    def to(self, device: torch.device | str, *args, **kwargs) -> LazyImages:
        """A lazy view whose batches are returned on ``device`` (``non_blocking`` etc. are ignored)."""
        view = LazyImages(self.paths, self.image_shape, self.decode, device, self.threads)
        return view

    def take(self, rows: torch.Tensor | Sequence[int]) -> LazyImages:
        """The rows ``rows`` (int64 positions or a bool mask ``[N]``) as another lazy set; nothing decoded."""
        positions = _positions(rows, len(self))
        return LazyImages([self.paths[i] for i in positions], self.image_shape, self.decode, self.device, self.threads)

    def __getitem__(self, index) -> torch.Tensor:
        """Decode the indexed rows: an int gives ``[C, H, W]``, anything else ``[B, C, H, W]`` (uint8)."""
        if isinstance(index, (int, np.integer)) or (isinstance(index, torch.Tensor) and index.dim() == 0):
            return self.decode_rows([int(index)])[0]
        if isinstance(index, slice):
            return self.decode_rows(range(*index.indices(len(self))))
        return self.decode_rows(_positions(index, len(self)))

    def decode_rows(self, positions: Sequence[int]) -> torch.Tensor:
        """uint8 ``[B, C, H, W]`` of ``positions`` (each in ``[-N, N)``), on ``self.device``."""
        c, h, w = self.image_shape
        n = len(self)
        for p in positions:
            if not -n <= p < n:
                raise IndexError(f"index {p} is out of range for {n} images")
        paths = [self.paths[p] for p in positions]
        out = np.empty((len(paths), h, w, c), dtype=np.uint8)
        if len(paths) <= 1 or self.threads <= 1:
            for i, path in enumerate(paths):
                out[i] = self._decoded(path)
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="probssl-decode")
            for i, array in enumerate(self._pool.map(self._decoded, paths)):
                out[i] = array
        batch = torch.from_numpy(np.ascontiguousarray(out.transpose(0, 3, 1, 2)))
        return batch if self.device.type == "cpu" else batch.to(self.device)

    def _decoded(self, path: str) -> np.ndarray:
        c, h, w = self.image_shape
        array = self.decode(path)
        if array.ndim == 2:
            array = array[:, :, None]
        if array.shape != (h, w, c) or array.dtype != np.uint8:
            raise DataError(
                f"Image {path} decoded to {array.dtype} {tuple(array.shape)}, not uint8 ({h}, {w}, {c}) like the rest of "
                "the dataset: the file changed since the dataset was scanned; reload it."
            )
        return array

    # -- pickling for DataLoader workers: a thread pool does not cross processes
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_pool"] = None
        return state

    def __repr__(self) -> str:
        c, h, w = self.image_shape
        return f"LazyImages(n={len(self)}, image_shape=({c}, {h}, {w}), device={self.device})"


def _positions(index, n: int) -> list[int]:
    """int64 / bool tensor, numpy array or sequence -> positions (a bool mask must have length ``n``)."""
    index = torch.as_tensor(index)
    if index.dtype == torch.bool:
        if index.shape != (n,):
            raise IndexError(f"a boolean mask must have shape ({n},), got {tuple(index.shape)}")
        index = torch.nonzero(index).flatten()
    elif index.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
        raise IndexError(f"images can be indexed by integers or a boolean mask, got {index.dtype}")
    return [int(i) for i in index.flatten().tolist()]


def is_lazy(images: object) -> bool:
    return isinstance(images, LazyImages)


def take_rows(images: torch.Tensor | LazyImages, rows: torch.Tensor) -> torch.Tensor | LazyImages:
    """``images[rows]`` as a fresh contiguous tensor, or, for a lazy set, the lazy rows (nothing decoded)."""
    return images.take(rows) if is_lazy(images) else images[rows].contiguous()


@dataclass(frozen=True)
class MemoryChoice:
    in_memory: bool
    reason: str


def choose_in_memory(setting: str | bool, needed_bytes: int, root: str | Path) -> MemoryChoice:
    """``data.in_memory`` (auto / true / false) for a file dataset whose decoded pixels take ``needed_bytes``.

    auto keeps it in memory while that is at most ``AUTO_MEMORY_SHARE`` of the memory available now (Linux:
    MemAvailable; where that cannot be read, in memory) and streams it from its files otherwise; true refuses
    a set above ``MAX_MEMORY_SHARE`` of it with a clear error (the kernel would kill the run later).
    """
    if setting not in IN_MEMORY_CHOICES:
        raise DataError(f"data.in_memory must be auto, true or false, got {setting!r}")
    gib = needed_bytes / 2**30
    if setting is False:
        return MemoryChoice(False, f"data.in_memory=false: streamed from the files ({gib:.2f} GiB decoded)")
    available = available_memory()
    if available is None:
        return MemoryChoice(True, f"in memory ({gib:.2f} GiB; the available memory cannot be read here)")
    if setting is True and needed_bytes > MAX_MEMORY_SHARE * available:
        raise DataError(
            f"Folder dataset {root} needs {gib:.1f} GiB decoded, but only {available / 2**30:.1f} GiB of memory are "
            "available: set data.in_memory=auto (or false) to stream it from its files, set data.image_size to a "
            "smaller size, or use fewer images."
        )
    if setting is True:
        return MemoryChoice(True, f"data.in_memory=true: in memory ({gib:.2f} GiB)")
    if needed_bytes > AUTO_MEMORY_SHARE * available:
        return MemoryChoice(
            False,
            f"auto: {gib:.2f} GiB decoded > {AUTO_MEMORY_SHARE:.0%} of the {available / 2**30:.1f} GiB available "
            "-> streamed from the files",
        )
    return MemoryChoice(True, f"auto: {gib:.2f} GiB decoded fits in memory")


def available_memory() -> int | None:
    """Bytes of memory available now (Linux ``MemAvailable``), or None where it cannot be read."""
    try:
        info = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    for line in info.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None
