"""Collectives for losses under data parallelism (no-ops in a single process).

Contrastive losses use every rank's samples as negatives: embeddings are all-gathered by a
function whose backward sums the gradients arriving from every rank, so after DistributedDataParallel averages parameter gradients the result equals the
single-process gradient of the same global batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_and_world() -> tuple[int, int]:
    return (dist.get_rank(), dist.get_world_size()) if is_distributed() else (0, 1)


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums, over ranks, the gradient of this rank's slice."""

    @staticmethod
    def forward(ctx, x: Tensor) -> tuple[Tensor, ...]:
        out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(out, x.contiguous())
        return tuple(out)

    @staticmethod
    def backward(ctx, *grads: Tensor) -> Tensor:
        stacked = torch.stack(grads)
        dist.all_reduce(stacked)  # every rank's loss may depend on this rank's samples
        return stacked[dist.get_rank()]


def all_gather_with_grad(x: Tensor) -> Tensor:
    """[n, ...] on each rank -> [world * n, ...], rank-major, differentiable."""
    if not is_distributed():
        return x
    return torch.cat(_GatherWithGrad.apply(x), dim=0)


def all_gather_no_grad(x: Tensor) -> Tensor:
    """[n, ...] -> [world * n, ...] for tensors without gradients (labels, ids)."""
    if not is_distributed():
        return x
    out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out, dim=0)
