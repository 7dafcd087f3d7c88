"""The CPU bf16 convolution bug behind probssl.train.conv_guard, measured on the machine in front of you.

    OMP_NUM_THREADS=2 python benchmarks/bf16_conv_bug.py [--trials 50]

For each geometry (input size, kernel, stride, padding), a bare ``nn.Conv2d(64, 64)`` on ``[16, 64, h, h]``
under ``torch.autocast("cpu", torch.bfloat16)``: the share of trials whose weight gradient is non-finite, with the
freed memory left as it is ("plain") and filled with NaN first ("poisoned": a kernel that reads uninitialised
memory then fails far more often), and the same conv guarded by ``conv_guard.keep_fp32`` (poisoned). Prints one
JSON line per geometry.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from probssl.train.conv_guard import keep_fp32  # noqa: E402

GEOMETRIES = [(1, 3, 2, 1), (1, 3, 3, 1), (1, 5, 2, 2), (1, 3, 1, 1), (2, 3, 2, 1), (4, 3, 2, 1), (2, 7, 2, 3)]


def bad_share(h: int, k: int, s: int, p: int, trials: int, poison: bool, guard: bool) -> float:
    torch.manual_seed(0)
    bad = 0
    for _ in range(trials):
        if poison:
            junk = [torch.full((1 << 20,), float("nan")) for _ in range(8)]
            del junk
        conv = torch.nn.Conv2d(64, 64, k, stride=s, padding=p, bias=False)
        if guard:
            keep_fp32(conv)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = conv(torch.randn(16, 64, h, h))
        y.float().sum().backward()
        bad += not bool(torch.isfinite(conv.weight.grad).all())
    return bad / trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=50)
    args = parser.parse_args()
    head = {"torch": torch.__version__, "cpu": platform.processor() or platform.machine()}
    head["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    print(json.dumps(head))
    for h, k, s, p in GEOMETRIES:
        row = {"input": h, "kernel": k, "stride": s, "padding": p}
        for name, poison, guard in (("plain", False, False), ("poisoned", True, False), ("guarded", True, True)):
            row[name] = bad_share(h, k, s, p, args.trials, poison, guard)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
