"""Training throughput of the backbones on CPU: forward + backward + AdamW step, in images/s.

    .venv/bin/python benchmarks/backbone_speed.py [--threads 2] [--steps 20] [--resnet-steps 3]

Cases: ``convnet`` on 1x28x28 at batch 256 (NCHW and channels_last) and ``resnet18-cifar`` on
3x32x32 at batch 32 (a few steps only: it runs at a few tens of images/s on two threads).
The loss is the mean square of the features (the head and loss cost nothing next to the net).
The CPU may be shared, so the convnet figure is the best of ``--repeats`` timings.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probssl.models import create_backbone  # noqa: E402


def throughput(
    name: str, in_channels: int, size: int, batch: int, steps: int, warmup: int, channels_last: bool, repeats: int = 1
) -> float:
    """Images/s of ``steps`` timed training steps; the best of ``repeats`` timings (the CPU is shared)."""
    torch.manual_seed(0)
    model = create_backbone(name, in_channels, size).train()
    x = torch.randn(batch, in_channels, size, size)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step() -> None:
        loss = model(x).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        best = max(best, batch * steps / (time.perf_counter() - t0))
    return best


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=20, help="timed steps for convnet")
    p.add_argument("--resnet-steps", type=int, default=3, help="timed steps for resnet18-cifar")
    p.add_argument("--repeats", type=int, default=3, help="report the best of this many timings")
    p.add_argument("--skip-resnet", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; forward+backward+AdamW")
    cases = [("convnet", 1, 28, 256, args.steps, 3, args.repeats)]
    if not args.skip_resnet:
        cases.append(("resnet18-cifar", 3, 32, 32, args.resnet_steps, 1, 1))
    for name, c, s, b, steps, warmup, repeats in cases:
        for cl in (False, True):
            ips = throughput(name, c, s, b, steps, warmup, cl, repeats)
            fmt = "channels_last" if cl else "contiguous"
            print(f"{name:>15} {c}x{s}x{s} batch {b:>3} {fmt:>13}: {ips:8.1f} img/s", flush=True)


if __name__ == "__main__":
    main()
