"""Compile time and eager vs compiled step time of the convnet SimCLR training step (the numbers behind
``probssl.train.device.choose_compile``).

    OMP_NUM_THREADS=2 python benchmarks/compile_breakeven.py [PAIRS] [PRECISION]   # default 15 pairs, fp32

Builds two Trainers on synthetic 1x28x28 data (batch 256, ``simclr-mnist`` with the convnet), compiles one
(``trainer.model = torch.compile(trainer.method)``), times its first two steps (the compile) and then
interleaves eager and compiled steps, so drift on a shared machine hits both alike. Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "harness"))
from rows import COMMON_OVERRIDES  # noqa: E402
from runners import synthetic_splits  # noqa: E402

from probssl.config import load_config  # noqa: E402
from probssl.train import Trainer, device  # noqa: E402


def build(precision: str) -> Trainer:
    overrides = [*COMMON_OVERRIDES, "model.backbone=convnet", f"train.precision={precision}"]
    config = load_config("simclr-mnist", overrides=overrides)
    run = Path(tempfile.mkdtemp()) / "run"
    trainer = Trainer(config, run, splits=synthetic_splits((1, 28, 28), 1024), echo=lambda _m: None)
    trainer.model.train()
    return trainer


def steps(trainer: Trainer, n: int, generator: torch.Generator) -> list[float]:
    out = []
    for _ in range(n):
        index = torch.randperm(1024, generator=generator)[:256]
        tic = time.perf_counter()
        trainer.train_step(index)
        trainer.step += 1
        out.append(time.perf_counter() - tic)
    return out


def main() -> None:
    pairs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    precision = sys.argv[2] if len(sys.argv) > 2 else "fp32"
    g = torch.Generator().manual_seed(0)
    eager = build(precision)
    steps(eager, 2, g)
    compiled = build(precision)
    compiled.model = torch.compile(compiled.method)
    first, second = steps(compiled, 1, g)[0], steps(compiled, 1, g)[0]
    for _ in range(5):  # warm-up pairs: inductor's worker pool is still busy right after compiling
        steps(eager, 1, g)
        steps(compiled, 1, g)
    e, c = [], []
    for _ in range(pairs):
        e += steps(eager, 1, g)
        c += steps(compiled, 1, g)
    print(
        json.dumps(
            {
                "precision": precision,
                "cpu_class": device._cpu_class(),  # the key of probssl.train.device.COMPILE_MEASUREMENTS
                "cpu_model": device.cpu_bf16_capability()["cpu_model"],
                "first_compiled_step_s": first,
                "second_compiled_step_s": second,
                "eager_median_s": statistics.median(e),
                "compiled_median_s": statistics.median(c),
                "median_pair_ratio": statistics.median(ci / ei for ei, ci in zip(e, c)),
                "compile_s": first - statistics.median(e),
                "load": os.getloadavg(),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
