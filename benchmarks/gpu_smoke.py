"""GPU readiness: every method's MNIST preset trains for a few steps on MNIST-shaped data in the fast settings
(bf16 autocast + channels-last + torch.compile on CUDA), with finite and decreasing loss, img/s and peak memory.

    python benchmarks/gpu_smoke.py                      # on a CUDA machine: 50 steps per preset, < 5 min on one GPU
    python benchmarks/gpu_smoke.py --device cpu --steps 3 --batch 16 --precision fp32 --compile false   # CI size

On real MNIST-shaped random images (uint8 1x28x28, 10 classes) the loss need not fall much; "decreasing" is the
mean of the last fifth of the steps below the mean of the first fifth (skipped for runs under 10 steps). Exit code
1 if any preset fails. No dataset files are needed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

from probssl.config import list_presets, load_config
from probssl.data import DataSplits, ImageDataset
from probssl.train import Callback, Trainer


def mnist_shaped(n: int, seed: int = 0) -> DataSplits:
    g = torch.Generator().manual_seed(seed)

    def split(m: int) -> ImageDataset:
        images = torch.randint(0, 256, (m, 1, 28, 28), dtype=torch.uint8, generator=g)
        return ImageDataset(images, torch.arange(m) % 10, tuple(map(str, range(10))), "mnist-shaped")

    return DataSplits(train=split(n), val=split(32), test=split(32))


class LossRecorder(Callback):
    def __init__(self):
        self.losses: list[float] = []
        self.tic = None

    def on_fit_start(self, trainer):
        self.tic = time.perf_counter()

    def on_step_end(self, trainer, stats):
        if stats is not None:
            self.losses.append(stats["loss"])


def smoke(preset: str, args) -> dict:
    overrides = [
        f"train.batch_size={args.batch}",
        f"train.max_steps={args.steps}",
        "train.epochs=1000",
        "train.progress=false",
        f"train.device={args.device}",
        f"train.precision={args.precision}",
        f"train.compile={args.compile}",
        "train.log_every=1000000",
        "train.checkpoint_every=0",
    ]
    config = load_config(preset, overrides=overrides)
    recorder = LossRecorder()
    splits = mnist_shaped(args.batch * args.steps)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config, Path(tmp) / "run", splits=splits, callbacks=[recorder], echo=lambda _m: None)
        trainer.fit()
    seconds = time.perf_counter() - recorder.tic
    losses = recorder.losses
    fifth = max(1, len(losses) // 5)
    finite = len(losses) == args.steps and all(math.isfinite(v) for v in losses)
    decreasing = len(losses) < 10 or sum(losses[-fifth:]) / fifth < sum(losses[:fifth]) / fifth
    peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    return {
        "preset": preset,
        "ok": finite and decreasing,
        "finite": finite,
        "decreasing": decreasing,
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "img_per_s": args.batch * args.steps / seconds,
        "peak_mib": peak,
        "precision": trainer.precision,
        "compiled": trainer.compiled,
        "channels_last": trainer.channels_last,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--precision", default="bf16")
    p.add_argument("--compile", default="true")
    p.add_argument("--presets", nargs="*", default=[p for p in list_presets() if p.endswith("-mnist")])
    p.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    args = p.parse_args(argv)
    results = []
    for preset in args.presets:
        r = smoke(preset, args)
        results.append(r)
        print(
            f"{preset:28s} {'ok' if r['ok'] else 'FAIL'}  loss {r['first_loss']:.3f} -> {r['last_loss']:.3f}  "
            f"{r['img_per_s']:7.0f} img/s  peak {r['peak_mib'] or 0:.0f} MiB  ({r['precision']}, "
            f"compile {r['compiled']})",
            flush=True,
        )
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
