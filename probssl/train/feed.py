"""The training batches of one epoch: indexed from the in-memory tensor, or decoded ahead by DataLoader workers.

The trainer decides which images form each step (a seeded permutation per epoch, this rank's slice of every
global batch); this module only delivers their pixels, uint8 ``[B, C, H, W]`` on the training device, in that
order. For an in-memory split that is ``images[index]``. For a split streamed from its files
(:class:`~probssl.data.lazy.LazyImages`) a torch ``DataLoader`` decodes the coming batches in worker
processes while the current step runs (pinned memory on CUDA). The batches are the same either way, so the
streamed run equals the in-memory one, and a resumed epoch replays the same order from the batch it stopped at
(the permutation's generator state and the batch position are in the checkpoint).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from probssl.data.lazy import LazyImages, is_lazy

__all__ = ["default_loader_workers", "training_batches"]


def default_loader_workers() -> int:
    """``data.loader_workers: null``: two decoding processes, or one per core where there are fewer cores."""
    return min(2, os.cpu_count() or 1)


class _Batches(Dataset):
    """Item ``i`` = the decoded batch ``batches[i]`` (uint8 ``[B, C, H, W]`` on the CPU)."""

    def __init__(self, images: LazyImages, batches: Sequence[torch.Tensor]):
        self.images = images
        self.batches = [b.tolist() for b in batches]

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images.decode_rows(self.batches[i])


def _wants_pinned_memory(device: torch.device) -> bool:
    """Page-locked batches let the host-to-GPU copy run asynchronously (``non_blocking``); only CUDA has it."""
    return device.type == "cuda"


def _one_thread(_worker_id: int) -> None:
    # Decoding is Pillow and numpy; torch's intra-op threads in each worker would only fight the training step.
    torch.set_num_threads(1)


def training_batches(
    images: torch.Tensor | LazyImages,
    batches: Sequence[torch.Tensor],
    device: torch.device,
    workers: int | None = None,
) -> Iterator[torch.Tensor]:
    """uint8 ``[B, C, H, W]`` on ``device`` for each index batch in ``batches`` (int64 ``[B]`` each), in order.

    images: the training split's images (a tensor on ``device``, or lazy). workers: DataLoader worker processes
    for a lazy split (None: :func:`default_loader_workers`; 0: decode in this process, with threads). Stopping
    the iteration early (the run's last step, an error) shuts the workers down.
    """
    if not is_lazy(images):
        for index in batches:
            yield images[index]
        return
    workers = default_loader_workers() if workers is None else workers
    source = images.to("cpu")
    if workers > 0:
        source.threads = 1  # each worker decodes its own batch; threads inside it would oversubscribe the cores
    loader = DataLoader(
        _Batches(source, batches),
        batch_size=None,  # each item already is a batch
        shuffle=False,
        num_workers=workers,
        pin_memory=_wants_pinned_memory(device),
        worker_init_fn=_one_thread if workers > 0 else None,
        prefetch_factor=4 if workers > 0 else None,
    )
    iterator = iter(loader)
    try:
        for batch in iterator:
            yield batch.to(device, non_blocking=True)
    finally:
        del iterator  # its finaliser stops the worker processes
