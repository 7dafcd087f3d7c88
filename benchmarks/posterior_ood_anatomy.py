"""Why a projected-normal posterior's uncertainty does or does not flag OOD inputs: its two parts apart.

    python benchmarks/posterior_ood_anatomy.py runs/reproduce/mnist/vsimclr/seed0 --ood fashion-mnist

For q(z|x) = PN(m, diag sigma^2) the posterior score is sqrt(mean sigma^2) / ||m|| (the spread on the sphere
shrinks as ||m|| grows). This prints, for test images and OOD images, the medians of ||m||, mean sigma and
the score, and each one's OOD AUROC (higher value = OOD), so one sees which part moves which way.
"""

from __future__ import annotations

import argparse

import torch
from sklearn.metrics import roc_auc_score

from probssl.evaluation import make_ood_images
from probssl.train import load_run, load_splits, to_float_images


@torch.no_grad()
def parts(method, images: torch.Tensor, batch: int = 1000) -> dict[str, torch.Tensor]:
    out: dict[str, list[torch.Tensor]] = {"||m||": [], "mean sigma": [], "posterior score": []}
    for i in range(0, len(images), batch):
        q = method.posterior(to_float_images(images[i : i + batch]))
        out["||m||"].append(q.loc.norm(dim=-1))
        out["mean sigma"].append(q.scale.mean(-1))
        out["posterior score"].append(q.uncertainty())
    return {k: torch.cat(v) for k, v in out.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir")
    p.add_argument("--ood", required=True, help="an OOD set of `probssl eval --ood` (a dataset name or noise, ...)")
    p.add_argument("--images", type=int, default=2000, help="images of each set (a seeded subset)")
    args = p.parse_args()
    config, method, _ = load_run(args.run_dir)
    splits = load_splits(config)
    if not hasattr(method.posterior(torch.zeros(1, *splits.image_shape)), "loc"):
        raise SystemExit(f"{args.run_dir}: the posterior has no (loc, scale); this analysis is for VSimCLR/VSupCon")
    test = splits.test.images[
        torch.randperm(len(splits.test), generator=torch.Generator().manual_seed(0))[: args.images]
    ]
    ood, _ = make_ood_images(args.ood, splits, config, seed=0, max_images=args.images)
    a, b = parts(method, test), parts(method, ood)
    labels = [0] * len(test) + [1] * len(ood)
    print(
        f"{args.run_dir}: {config.method.name} on {config.data.name}, OOD = {args.ood}, {len(test)} + {len(ood)} images"
    )
    print(f"{'quantity':18s} {'median (test)':>14s} {'median (OOD)':>13s} {'OOD AUROC':>10s}")
    for name in a:
        auroc = roc_auc_score(labels, torch.cat([a[name], b[name]]).numpy())
        print(f"{name:18s} {a[name].median():14.3f} {b[name].median():13.3f} {auroc:10.3f}")


if __name__ == "__main__":
    main()
