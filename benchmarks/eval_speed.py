"""Wall-clock time of the evaluation suite on MNIST-sized feature sets.

Synthetic features: 60,000 train / 6,000 val / 10,000 test rows of dimension 128, 10 balanced classes,
class c ~ N(mu_c, I) with mu_c ~ N(0, 0.3^2 I) (a linear probe gets ~90%, so nothing is trivially
separable). 10,000 out-of-distribution rows ~ N(0, 1.5^2 I) for OOD detection. Every step below is
timed once, end to end, with torch.set_num_threads(--threads):

    linear probe        probes.linear_probe, 5 weight decays selected on val
    kNN probe           probes.knn_probe, 5 values of k selected on val
    spectrum + erank    geometry.covariance_spectrum + effective_rank of the train features, and
                        alignment.uniformity of the test features (2,000-row cap, as in evaluate_run)
    MI lower bound      information.mi_classifier_lower_bound (train -> test)
    MI kNN (Ross)       information.mi_knn_ksg on the test split (10,000 rows = its default cap)
    uncertainty         knn_distance_score (test and OOD vs train) + ood_detection +
                        misclassification_detection (nearest-class-mean classifier) +
                        selective_accuracy_curve + aurc
    clustering          clustering.clustering_scores on the 60,000 train rows (GMM fitted on 20,000)
    MLP probe           mlp_probe.mlp_probe with defaults -- reported, but outside the 60 s suite budget
                        (it has its own: < 10 s)

    python benchmarks/eval_speed.py [--threads 2] [--out benchmarks/results/eval_speed.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

try:
    import probssl  # noqa: F401
except ModuleNotFoundError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probssl.evaluation.alignment import uniformity
from probssl.evaluation.clustering import clustering_scores
from probssl.evaluation.geometry import covariance_spectrum, effective_rank
from probssl.evaluation.information import mi_classifier_lower_bound, mi_knn_ksg
from probssl.evaluation.mlp_probe import mlp_probe
from probssl.evaluation.probes import knn_probe, linear_probe
from probssl.evaluation.uncertainty import (
    aurc,
    knn_distance_score,
    misclassification_detection,
    ood_detection,
    selective_accuracy_curve,
)

BUDGET_S = 60.0
SUITE = (
    "linear probe",
    "kNN probe",
    "spectrum + erank",
    "MI lower bound",
    "MI kNN (Ross)",
    "uncertainty",
    "clustering",
)


def make_features(num_train=60_000, num_val=6_000, num_test=10_000, num_ood=10_000, dim=128, classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    means = 0.3 * torch.randn(classes, dim, generator=g)

    def split(n):
        y = torch.randint(0, classes, (n,), generator=g)
        return means[y] + torch.randn(n, dim, generator=g), y

    return split(num_train), split(num_val), split(num_test), 1.5 * torch.randn(num_ood, dim, generator=g)


def uncertainty_suite(train_x, train_y, test_x, test_y, ood_x):
    score_in = knn_distance_score(train_x, test_x, k=10)
    score_out = knn_distance_score(train_x, ood_x, k=10)
    means = torch.stack([train_x[train_y == c].mean(0) for c in range(int(train_y.max()) + 1)])
    correct = torch.cdist(test_x, means).argmin(1) == test_y
    coverage, accuracy = selective_accuracy_curve(score_in, correct)
    return {
        "ood": ood_detection(score_in, score_out),
        "misclassification": misclassification_detection(score_in, correct),
        "accuracy_at_50pct_coverage": float(accuracy[coverage >= 0.5][0]),
        "aurc": aurc(score_in, correct),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "eval_speed.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    (train_x, train_y), (val_x, val_y), (test_x, test_y), ood_x = make_features()
    steps = {
        "linear probe": lambda: linear_probe(train_x, train_y, val_x, val_y, test_x, test_y).test_acc,
        "kNN probe": lambda: knn_probe(train_x, train_y, val_x, val_y, test_x, test_y).test_acc,
        "spectrum + erank": lambda: (
            covariance_spectrum(train_x)[:3].tolist(),
            effective_rank(train_x),
            uniformity(test_x),
        ),
        "MI lower bound": lambda: mi_classifier_lower_bound(train_x, train_y, test_x, test_y)["nats"],
        "MI kNN (Ross)": lambda: mi_knn_ksg(test_x, test_y),
        "uncertainty": lambda: uncertainty_suite(train_x, train_y, test_x, test_y, ood_x),
        "clustering": lambda: clustering_scores(train_x, train_y, seed=0),
        "MLP probe": lambda: mlp_probe(train_x, train_y, val_x, val_y, test_x, test_y).test_acc,
    }
    seconds, results = {}, {}
    print(
        f"torch {torch.__version__}, threads {args.threads}, train {tuple(train_x.shape)}, "
        f"val {tuple(val_x.shape)}, test {tuple(test_x.shape)}"
    )
    print(f"{'step':18s} {'seconds':>8s}  result")
    for name, step in steps.items():
        tic = time.perf_counter()
        results[name] = step()
        seconds[name] = time.perf_counter() - tic
        print(f"{name:18s} {seconds[name]:8.2f}  {results[name]}", flush=True)
    suite_total = sum(seconds[name] for name in SUITE)
    verdict = "OK" if suite_total < BUDGET_S else "OVER"
    print(f"{'suite total':18s} {suite_total:8.2f}  (budget {BUDGET_S:.0f} s: {verdict})")
    print(f"{'+ MLP probe':18s} {suite_total + seconds['MLP probe']:8.2f}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "torch": torch.__version__,
                "python": platform.python_version(),
                "threads": args.threads,
                "shapes": {
                    "train": list(train_x.shape),
                    "val": list(val_x.shape),
                    "test": list(test_x.shape),
                    "ood": list(ood_x.shape),
                },
                "seconds": {k: round(v, 3) for k, v in seconds.items()},
                "suite": list(SUITE),
                "suite_total_s": round(suite_total, 3),
                "budget_s": BUDGET_S,
                "results": results,
            },
            indent=1,
            default=str,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
