"""Throughput of ``probssl.augment.Augmenter`` on CPU.

Measures input images per second (each producing ``--views`` augmented views) for
``recipe("simclr", 3)`` on 256 x 3 x 32 x 32 and ``recipe("simclr", 1)`` on 256 x 1 x 28 x 28, as the
median of ``--repeats`` timed calls after warm-up, with torch.set_num_threads(1) and (2).

    python benchmarks/augment_speed.py [--views 2] [--repeats 20] [--threads 1 2] [--blur]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

try:
    from probssl.augment import Augmenter, recipe
except ModuleNotFoundError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from probssl.augment import Augmenter, recipe


def bench(aug: Augmenter, images: torch.Tensor, views: int, repeats: int, warmup: int = 3) -> float:
    """Median seconds per ``aug(images, views)`` call."""
    g = torch.Generator().manual_seed(0)
    for _ in range(warmup):
        aug(images, views=views, generator=g)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        aug(images, views=views, generator=g)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--blur", action="store_true", help="also enable blur_p=0.5 (ImageNet-style SimCLR)")
    args = parser.parse_args()

    cases = [
        ("simclr C=3 32x32", recipe("simclr", 3, **({"blur_p": 0.5} if args.blur else {})), (3, 32, 32)),
        ("simclr C=1 28x28", recipe("simclr", 1, **({"blur_p": 0.5} if args.blur else {})), (1, 28, 28)),
        ("simvae C=1 28x28", recipe("simvae", 1), (1, 28, 28)),
    ]
    print(f"torch {torch.__version__}, batch {args.batch}, views {args.views}, median of {args.repeats} calls")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for name, params, shape in cases:
            images = torch.rand(args.batch, *shape, generator=torch.Generator().manual_seed(1))
            sec = bench(Augmenter(params), images, args.views, args.repeats)
            print(
                f"threads={threads}  {name:18s} {sec * 1e3:8.2f} ms/call  "
                f"{args.batch / sec:10.0f} images/s  ({args.batch * args.views / sec:10.0f} views/s)"
            )


if __name__ == "__main__":
    main()
