"""The linear probe in float64 vs float32 on a trained run's features: time and accuracies per weight decay.

    python benchmarks/linear_probe_precision.py runs/reproduce/mnist/simclr/seed0

Backs the choice in ``probssl.evaluation.probes.linear_probe`` (float32: same accuracies, less time).
"""

from __future__ import annotations

import argparse
import time

import torch

from probssl.evaluation import extract, fit_logistic_regression, standardize
from probssl.evaluation.probes import accuracy
from probssl.train import load_run, load_splits

WEIGHT_DECAYS = (1e-2, 1e-3, 1e-4, 1e-5, 0.0)  # the probe's order: strongest first, warm-started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir")
    args = p.parse_args()
    config, method, _ = load_run(args.run_dir)
    splits = load_splits(config)
    feats = [extract(method, s.images) for s in (splits.train, splits.val, splits.test)]
    labels = [s.labels for s in (splits.train, splits.val, splits.test)]
    k = splits.num_classes
    print(f"{args.run_dir}: features {tuple(feats[0].shape)}, torch threads {torch.get_num_threads()}")
    print(f"{'dtype':8s} {'weight decay':>12s} {'val acc':>8s} {'test acc':>9s} {'cumulative s':>13s}")
    for dtype in (torch.float64, torch.float32):
        train, val, test = standardize(*(f.to(dtype) for f in feats))
        tic, params = time.perf_counter(), None
        for wd in WEIGHT_DECAYS:
            params = fit_logistic_regression(train, labels[0], k, wd, init=params)
            w, b = params
            print(
                f"{str(dtype).removeprefix('torch.'):8s} {wd:12g} {accuracy(val @ w + b, labels[1]):8.4f} "
                f"{accuracy(test @ w + b, labels[2]):9.4f} {time.perf_counter() - tic:13.1f}"
            )


if __name__ == "__main__":
    main()
