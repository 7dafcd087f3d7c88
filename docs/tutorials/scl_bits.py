"""Tutorial: compress images to SCL bits, with the command line.

Trains SCL with a Bernoulli latent (the ``scl-bernoulli-digits`` preset: a 64-bit code of each 8x8 digit)
with ``probssl train``, evaluates it with ``probssl eval --quick``, and writes every image's code with
``probssl embed``. It then reports what the code costs and what it keeps:

* bits per image of the code (``compression.representation_bits`` in eval.json) against the raw image's
  C*H*W*8 bits, i.e. the compression ratio;
* the linear-probe accuracy on those bits (``summary.linear_acc``);
* the codes themselves, packed 8 bits to a byte with numpy.

    OMP_NUM_THREADS=1 python docs/tutorials/scl_bits.py --out runs/tutorial-scl --steps 60

Writes OUT/run (run, eval.json), OUT/codes.npz (the embedding rows), OUT/codes.bin (packed codes) and
OUT/compression.json (every number printed).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np


def probssl_cli(*args: str) -> None:
    """Run one ``probssl`` command (as ``python -m probssl``, so it is this interpreter's install)."""
    subprocess.run([sys.executable, "-m", "probssl", *args], check=True)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/tutorial-scl")
    parser.add_argument("--steps", type=int, default=60, help="optimiser steps (the preset trains 60 epochs)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    run = str(out / "run")

    # 1. Train and evaluate from the command line (the same commands work in a shell).
    probssl_cli("train", "--preset", "scl-bernoulli-digits", "--out", run,
                "--set", f"train.max_steps={args.steps}", "--set", "train.progress=false",
                "--set", "train.monitor_every=0")  # fmt: skip
    probssl_cli("eval", run, "--quick", "--ood", "noise")
    probssl_cli("embed", run, "--out", str(out / "codes.npz"))

    # 2. What the evaluation measured: bits, ratio, accuracy (eval.json is documented in docs/evaluation.md).
    metrics = json.loads((out / "run" / "eval.json").read_text())
    comp, summary = metrics["compression"], metrics["summary"]

    # 3. The codes: one row per test image; the representation of SCL-Bernoulli is its hard bits.
    rows = np.load(out / "codes.npz")
    codes = rows["representation"]
    if not np.isin(codes, (0.0, 1.0)).all():
        raise SystemExit("the SCL-Bernoulli representation should be hard bits (0/1)")
    packed = np.packbits(codes.astype(np.uint8), axis=1)  # [N, bits / 8] bytes
    packed.tofile(out / "codes.bin")

    result = {
        "representation": metrics["representation"]["kind"],
        "representation_bits": comp["representation_bits"],
        "input_bits": comp["input_bits"],
        "compression_ratio": comp["ratio"],
        "linear_acc": summary["linear_acc"],
        "knn_acc": summary["knn_acc"],
        "images": int(codes.shape[0]),
        "bytes_per_image": int(packed.shape[1]),
        "distinct_codes": int(len(np.unique(packed, axis=0))),
        # epistemic: SCL's default, the distance to the training features (the bits' own bit_entropy ranked noise
        # as more certain than digits at 20 epochs; docs/uncertainty.md)
        "uncertainty_score": metrics["uncertainty"]["primary"],
        "mean_uncertainty": summary["mean_uncertainty"],
    }
    print(
        f"{result['representation_bits']} bits per image (raw image {result['input_bits']} bits): "
        f"{result['compression_ratio']:.1f}x compression"
    )
    print(f"linear probe on the bits: {result['linear_acc']:.3f} (kNN {result['knn_acc']:.3f})")
    print(
        f"{result['images']} test codes in {packed.nbytes} bytes ({result['bytes_per_image']} per image), "
        f"{result['distinct_codes']} distinct"
    )
    (out / "compression.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
