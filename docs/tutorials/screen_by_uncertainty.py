"""Tutorial: screen inputs by uncertainty.

Trains a small VSimCLR on the bundled 8x8 digits, then scores three kinds of input with the method's
default uncertainty score (``method.uncertainty(images)``, higher = more uncertain) and with its
posterior's own score (``method.posterior(images).uncertainty()``):

* the digits test split (in distribution),
* uniform noise images (far out of distribution),
* the test digits with their pixels shuffled (same intensities, no spatial structure).

It reports the OOD AUROC of each score for each OOD set (1 = every OOD image scores above every test
image, 0.5 = chance, below 0.5 = inverted), then screens: a threshold at the 95th percentile of the
validation split's scores keeps about 95 % of in-distribution inputs and rejects what scores above it.

    OMP_NUM_THREADS=1 python docs/tutorials/screen_by_uncertainty.py --out runs/tutorial-screen --steps 60

Writes OUT/run (the trained run) and OUT/screening.json (every number printed).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import probssl
from probssl.data import load_splits, to_float_images
from probssl.evaluation.uncertainty import auroc


def ood_inputs(test: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
    """OOD image sets built from the float test images [N, C, H, W] in [0, 1]: noise and shuffled."""
    gen = torch.Generator().manual_seed(seed)
    n, c, h, w = test.shape
    noise = torch.rand(n, c, h, w, generator=gen)
    # One pixel permutation per image, shared by the channels: the same intensities, no spatial structure.
    perm = torch.argsort(torch.rand(n, h * w, generator=gen), dim=1)
    flat = test.reshape(n, c, h * w)
    shuffled = torch.gather(flat, 2, perm[:, None, :].expand(n, c, h * w)).reshape(n, c, h, w)
    return {"noise": noise, "shuffled": shuffled}


def scores(method, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """{score name: [N]} for the method's default score and its posterior's default score."""
    with torch.no_grad():
        return {
            f"default ({method.uncertainty_kinds()[0]})": method.uncertainty(images),
            f"posterior ({method.posterior_class.default_uncertainty})": method.posterior(images).uncertainty(),
        }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/tutorial-screen")
    parser.add_argument("--steps", type=int, default=60, help="optimiser steps (the preset trains 60 epochs)")
    args = parser.parse_args(argv)
    out = Path(args.out)

    # 1. Train: the vsimclr-digits preset, stopped after a few steps. VSimCLR fits its epistemic feature
    #    density when training ends, so the default score is available right away.
    config = probssl.load_config(
        "vsimclr-digits", overrides=[f"train.max_steps={args.steps}", "train.progress=false", "train.monitor_every=0"]
    )
    probssl.Trainer(config, out / "run").fit()

    # 2. Load the trained method back, as any later process would.
    config, method, _ = probssl.load_run(out / "run")
    method.eval()
    splits = load_splits(config.data)
    test = to_float_images(splits.test.images)
    val = to_float_images(splits.val.images)

    # 3. Score in-distribution and OOD inputs; AUROC with OOD as the positive class.
    in_scores = scores(method, test)
    result: dict = {"default_score": method.uncertainty_kinds()[0], "auroc": {}, "screen": {}}
    for ood_name, images in ood_inputs(test).items():
        ood_scores = scores(method, images)
        for name, s in in_scores.items():
            result["auroc"].setdefault(name, {})[ood_name] = auroc(ood_scores[name], s)

    # 4. Screen with the default score: threshold = 95th percentile on the validation split.
    threshold = float(torch.quantile(method.uncertainty(val).detach(), 0.95))
    default = next(iter(in_scores))
    result["screen"]["threshold"] = threshold
    result["screen"]["test_kept"] = float((in_scores[default] <= threshold).float().mean())
    for ood_name, images in ood_inputs(test).items():
        rejected = (method.uncertainty(images).detach() > threshold).float().mean()
        result["screen"][f"{ood_name}_rejected"] = float(rejected)

    print(f"default uncertainty score: {result['default_score']}")
    print(f"{'score':36s} {'AUROC noise':>12s} {'AUROC shuffled':>15s}")
    for name, row in result["auroc"].items():
        print(f"{name:36s} {row['noise']:12.3f} {row['shuffled']:15.3f}")
    s = result["screen"]
    print(
        f"screening at {threshold:.3g}: keeps {s['test_kept']:.1%} of test digits, rejects "
        f"{s['noise_rejected']:.1%} of noise and {s['shuffled_rejected']:.1%} of shuffled digits"
    )
    (out / "screening.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
