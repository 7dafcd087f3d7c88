"""Small helpers shared by the evaluation sections: seeded row subsets, JSON-safe numbers, thread caps."""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Any

import torch
from torch import Tensor

try:  # a dependency of scikit-learn
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None


def one_thread():
    return threadpool_limits(limits=1) if threadpool_limits is not None else nullcontext()


def subsample_rows(n: int, cap: int | None, seed: int) -> Tensor:
    """Sorted random row indices, at most ``cap`` of range(n) (all rows if cap is None or >= n)."""
    if cap is None or n <= cap:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:cap].sort().values


def rounded_floats(x: Tensor, digits: int = 6) -> list[float]:
    return [round(float(v), digits) for v in x.reshape(-1).tolist()]


def json_clean(obj: Any) -> Any:
    """JSON-able copy: NaN / inf -> None, tuples -> lists, tensors -> lists."""
    if isinstance(obj, dict):
        return {str(k): json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_clean(v) for v in obj]
    if isinstance(obj, Tensor):
        return json_clean(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
