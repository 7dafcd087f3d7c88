"""Tutorial: train on your own folder of images.

probssl reads a folder with one sub-folder per class (``ROOT/train/<class>/*``, ``ROOT/test/<class>/*``,
optionally ``ROOT/val/<class>/*``; any sizes, PNG/JPEG/WebP/BMP/TIFF, grey or colour). This script writes
such a folder (three classes of small synthetic pictures: horizontal stripes, vertical stripes, discs,
of mixed sizes and image modes), trains SimCLR on it with the Python API, evaluates the run and writes
one embedding row per test image.

    OMP_NUM_THREADS=1 python docs/tutorials/train_on_folder.py --out runs/tutorial-folder --steps 40

The same run from the command line:

    probssl train --preset simclr-digits --out OUT/run --set data.name=folder --set data.data_dir=OUT/images \
        --set data.image_size=16 --set data.val_fraction=0.2 --set train.batch_size=32 --set train.max_steps=40
    probssl eval OUT/run --quick --ood noise
    probssl embed OUT/run --out OUT/test-embeddings.npz

Writes OUT/images (the folder), OUT/run (the run and its eval.json), OUT/test-embeddings.npz and
OUT/summary.json (every number printed).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

import probssl
from probssl.evaluation.embed import write_embeddings

CLASSES = ("hstripes", "vstripes", "disc")


def picture(kind: str, rng: np.random.Generator) -> Image.Image:
    """One RGB picture of ``kind``, 20-40 pixels a side, random colour, phase and position."""
    h, w = (int(v) for v in rng.integers(20, 41, size=2))
    yy, xx = np.mgrid[0:h, 0:w]
    period = int(rng.integers(4, 8))
    if kind == "hstripes":
        mask = ((yy + rng.integers(period)) // (period // 2)) % 2 == 0
    elif kind == "vstripes":
        mask = ((xx + rng.integers(period)) // (period // 2)) % 2 == 0
    else:
        cy, cx, r = h * rng.uniform(0.35, 0.65), w * rng.uniform(0.35, 0.65), min(h, w) * rng.uniform(0.25, 0.4)
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
    colour = rng.integers(100, 256, size=3)
    pixels = np.where(mask[..., None], colour, rng.integers(0, 40, size=3)).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def make_folder(root: Path, per_class: dict[str, int], seed: int = 0) -> None:
    """ROOT/{split}/{class}/{i}.{png|jpg}: ``per_class[split]`` images per class; modes RGB, L and RGBA mixed."""
    rng = np.random.default_rng(seed)
    for split, count in per_class.items():
        for kind in CLASSES:
            folder = root / split / kind
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                mode = ("RGB", "L", "RGBA")[i % 3]
                suffix = "jpg" if mode == "L" else "png"  # JPEG has no alpha channel
                picture(kind, rng).convert(mode).save(folder / f"{i}.{suffix}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/tutorial-folder")
    parser.add_argument("--steps", type=int, default=40, help="optimiser steps")
    args = parser.parse_args(argv)
    out = Path(args.out)

    # 1. Your images: here a generated folder; point data.data_dir at your own instead.
    make_folder(out / "images", {"train": 40, "test": 20})

    # 2. Train: a preset plus overrides, exactly the --set syntax of the command line.
    config = probssl.load_config(
        "simclr-digits",
        overrides=[
            "data.name=folder",
            f"data.data_dir={out / 'images'}",
            "data.image_size=16",  # every image is resized (data.resize: short-side-crop) to 16x16
            "data.val_fraction=0.2",  # carved from train/, stratified by class
            "train.batch_size=32",
            f"train.max_steps={args.steps}",
            "train.progress=false",
            "train.monitor_every=0",
        ],
    )
    probssl.Trainer(config, out / "run").fit()

    # 3. Evaluate (linear / kNN probes, geometry, uncertainty with a noise OOD set) and embed the test split.
    metrics = probssl.evaluate_run(out / "run", mode="quick", ood=["noise"])
    rows = probssl.embed(out / "run", progress=False)
    write_embeddings(rows, out / "test-embeddings.npz")

    summary = metrics["summary"]
    result = {
        "classes": metrics["splits"]["classes"],  # sorted sub-folder names
        "image_shape": metrics["splits"]["image_shape"],
        "splits": {k: metrics["splits"][k] for k in ("train", "val", "test")},
        "linear_acc": summary["linear_acc"],
        "knn_acc": summary["knn_acc"],
        "uncertainty_score": metrics["uncertainty"]["primary"],
        "ood_auroc_noise": summary["ood_auroc/noise"],
        "embedding_rows": int(len(rows["index"])),
        "representation_dim": int(rows["representation"].shape[1]),
    }
    print(f"trained on {result['splits']} images of shape {result['image_shape']}, classes {CLASSES}")
    print(f"linear probe {result['linear_acc']:.3f}, kNN {result['knn_acc']:.3f} (chance {1 / len(CLASSES):.3f})")
    print(f"OOD AUROC vs noise ({result['uncertainty_score']}): {result['ood_auroc_noise']:.3f}")
    print(f"wrote {result['embedding_rows']} embedding rows of dimension {result['representation_dim']}")
    (out / "summary.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
