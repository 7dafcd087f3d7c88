"""The streaming data path (``data.in_memory: false``) against the in-memory one, on generated JPEGs.

    OMP_NUM_THREADS=2 python benchmarks/streaming.py                 # 20,000 JPEGs, ResNet-18 CIFAR steps
    OMP_NUM_THREADS=2 python benchmarks/streaming.py --images 2000 --steps 3   # a quick look

Writes a folder of JPEGs of mixed sizes (32..48 px, 10 classes; ``data.image_size=32`` resizes them), then
measures, in one process:

* **feed rate**: images/s that :func:`probssl.train.feed.training_batches` delivers for one epoch of batches of
  128 (no training), streamed with 2 and 0 DataLoader workers, and indexed from memory;
* **step consumption**: images/s the ResNet-18 CIFAR SimCLR training step (fp32, batch 128) consumes, with the
  data in memory and streamed by 2 workers, steps of the two runs interleaved so drift hits both alike (median
  step time over the timed steps, after one warm-up step each);
* the verdicts: streamed feed rate >= 3x the step's consumption rate, and the streamed step's rate / in memory.

Results: ``--out`` (default ``benchmarks/results/streaming``) ``.json`` and ``.md``, with the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "harness"))
from machine import machine_info  # noqa: E402

from probssl.config import load_config  # noqa: E402
from probssl.data import load_dataset  # noqa: E402
from probssl.data.registry import clear_cache  # noqa: E402
from probssl.train import Trainer  # noqa: E402
from probssl.train.feed import training_batches  # noqa: E402

BATCH = 128


def write_jpegs(root: Path, n: int, seed: int = 0) -> Path:
    """``n`` training JPEGs (10 classes, smooth random colour fields of 32..48 px) and 100 test ones."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, count in (("train", n), ("test", 100)):
        for i in range(count):
            label = i % 10
            h, w = (int(x) for x in rng.integers(32, 49, 2))
            coarse = rng.integers(0, 256, (4, 4, 3)).astype(np.uint8)
            image = Image.fromarray(coarse).resize((w, h), Image.BILINEAR)
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True, exist_ok=True)
            image.save(folder / f"{i:06d}.jpg", quality=90)
    return root


def feed_rate(images, workers: int | None, batches: list[torch.Tensor]) -> float:
    """Images/s delivered for ``batches`` (the first two batches are not timed: worker start-up)."""
    stream = training_batches(images, batches, torch.device("cpu"), workers)
    for _ in range(2):
        next(stream)
    tic = time.perf_counter()
    count = sum(len(b) for b in stream)
    return count / (time.perf_counter() - tic)


def _trainer(root: Path, in_memory: bool, run: Path, backbone: str) -> Trainer:
    overrides = [
        f"model.backbone={backbone}",
        "data.name=folder",
        f"data.data_dir={root}",
        "data.image_size=32",
        f"data.in_memory={str(in_memory).lower()}",
        "data.loader_workers=2",
        f"train.batch_size={BATCH}",
        "train.precision=fp32",
        "train.compile=false",
        "train.progress=false",
        "train.monitor_every=0",
        "train.tensorboard=false",
        "train.num_threads=2",
    ]
    clear_cache()
    return Trainer(load_config("simclr-mnist", overrides=overrides), run, echo=lambda _m: None)


def step_rates(root: Path, steps: int, tmp: Path, backbone: str) -> dict:
    """Median images/s of the training step, data in memory vs streamed, steps interleaved."""
    trainers = {k: _trainer(root, k == "in_memory", tmp / k, backbone) for k in ("in_memory", "streamed")}
    times: dict[str, list[float]] = {k: [] for k in trainers}
    feeds = {}
    for key, trainer in trainers.items():
        trainer.model.train()
        indices = trainer._epoch_batches(0)
        feeds[key] = (iter(indices), training_batches(trainer.images, indices, trainer.device, 2))
    for i in range(steps + 1):
        for key, trainer in trainers.items():
            index_iter, images_iter = feeds[key]
            tic = time.perf_counter()
            trainer.train_step(next(index_iter), next(images_iter))  # the data wait is inside the timing
            trainer.step += 1
            if i > 0:
                times[key].append(time.perf_counter() - tic)
    return {k: BATCH / statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--steps", type=int, default=5, help="timed ResNet-18 steps per data path")
    parser.add_argument("--backbone", default="resnet18-cifar", help="the training step's backbone")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/streaming"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    load = [round(x, 2) for x in __import__("os").getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tic = time.perf_counter()
        root = write_jpegs(tmp / "jpegs", args.images)
        write_s = time.perf_counter() - tic
        lazy = load_dataset("folder", root, image_size=32, in_memory=False, val_fraction=0.0).train.images
        batches = list(torch.randperm(len(lazy), generator=torch.Generator().manual_seed(0)).split(BATCH))
        batches = batches[:-1] if len(batches[-1]) < BATCH else batches
        tic = time.perf_counter()
        memory = lazy[:]
        decode_all_s = time.perf_counter() - tic
        feed = {
            "streamed_2_workers": feed_rate(lazy, 2, batches),
            "streamed_0_workers": feed_rate(lazy, 0, batches),
            "in_memory": feed_rate(memory, None, batches),
        }
        steps = step_rates(root, args.steps, tmp, args.backbone)
    report = {
        "command": "OMP_NUM_THREADS=2 python benchmarks/streaming.py " + " ".join(sys.argv[1:]),
        "machine": machine_info(2, {"load_1_5_15": load}, {}),
        "images": args.images,
        "image_size": 32,
        "batch": BATCH,
        "backbone": args.backbone,
        "write_jpegs_s": round(write_s, 1),
        "decode_all_in_memory_s": round(decode_all_s, 1),
        "feed_img_per_s": {k: round(v, 1) for k, v in feed.items()},
        "step_img_per_s": {k: round(v, 2) for k, v in steps.items()},
        "feed_over_step": round(feed["streamed_2_workers"] / steps["in_memory"], 1),
        "streamed_step_over_in_memory_step": round(steps["streamed"] / steps["in_memory"], 3),
    }
    report["verdict_feed_3x"] = report["feed_over_step"] >= 3
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


def markdown(r: dict) -> str:
    m = r["machine"]
    lines = [
        "# Streaming data path vs in memory",
        "",
        f"`{r['command']}` -- {m['date']}, {m['cpu_model']}, {m['cores']} cores, torch {m['torch']}; load before "
        f"{r['machine']['load_before']['load_1_5_15']}, after {m['load_after']}.",
        "",
        f"{r['images']:,} generated JPEGs (32..48 px, resized to {r['image_size']}x{r['image_size']}), batches of "
        f"{r['batch']}. Writing them took {r['write_jpegs_s']} s; decoding all into memory {r['decode_all_in_memory_s']} s.",
        "",
        "| what | images/s |",
        "| --- | ---: |",
        *(f"| feed, {k.replace('_', ' ')} | {v:,.0f} |" for k, v in r["feed_img_per_s"].items()),
        *(
            f"| ResNet-18 CIFAR SimCLR step (fp32), data {k.replace('_', ' ')} | {v:.1f} |"
            for k, v in r["step_img_per_s"].items()
        ),
        "",
        f"Streamed feed (2 workers) / the step's consumption (data in memory): **{r['feed_over_step']}x** "
        f"(target >= 3x: {'met' if r['verdict_feed_3x'] else 'NOT met'}). Streamed step / in-memory step: "
        f"{r['streamed_step_over_in_memory_step']}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
