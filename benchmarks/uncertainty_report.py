"""Tables of docs/uncertainty.md from the uncertainty suites' results, and the evidence-chosen default scores.

    python benchmarks/uncertainty_report.py        # reads benchmarks/results/uncertainty-{mnist,fashion-mnist}.json
                                                   # writes benchmarks/results/uncertainty-summary.{md,json}

Default-score rule (the one the library's per-method defaults follow): for each config, among the scores its
posterior family offers, the one with the highest mean OOD AUROC over the four OOD sets (MNIST -> Fashion-MNIST,
MNIST -> noise, Fashion-MNIST -> MNIST, Fashion-MNIST -> noise); when VCL's log_det_cov is within 0.02 of the
best (sigma-based scores of one posterior are nearly the same ranking), log_det_cov. A default below 0.5 on any set
is flagged.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
DATASETS = ("mnist", "fashion-mnist")
GENERIC = {"mc_dispersion", "knn_distance", "density", "predicted_loss", "epistemic", "combined"}
OOD_KEYS = ("ood_auroc/other", "ood_auroc/noise")
PAPER_SCORE, TIE = "log_det_cov", 0.02  # 0.02: below the seed-to-seed standard error of these AUROCs
TARGETS = {  # issue #10's targets for the recommended preset's own score
    "ood_auroc/other": 0.95,
    "ood_auroc/noise": 0.95,
    "r_auroc/other": 0.65,
    "blend_rho": 0.5,
    "corruption_rho": 0.9,
}


def load() -> dict[str, dict]:
    out = {}
    for d in DATASETS:
        path = RESULTS / f"uncertainty-{d}.json"
        if path.exists():
            out[d] = json.loads(path.read_text())
    return out


def mean_of(results: dict, config: str, score: str, keys=OOD_KEYS) -> tuple[float | None, list[float]]:
    values = []
    for d in DATASETS:
        metrics = results.get(d, {}).get("results", {}).get(config, {}).get("scores", {}).get(score, {})
        values += [metrics[k]["mean"] for k in keys if k in metrics]
    return (sum(values) / len(values) if values else None), values


def choose_defaults(results: dict) -> dict[str, dict]:
    configs = sorted({c for r in results.values() for c in r["results"]})
    out = {}
    for config in configs:
        scores = sorted({s for r in results.values() for s in r["results"].get(config, {}).get("scores", {})})
        family = [s for s in scores if s not in GENERIC]
        ranked = sorted(((mean_of(results, config, s)[0] or 0.0, s) for s in family), reverse=True)
        if not ranked:
            continue
        best_mean, best = ranked[0]
        paper = next(((m, s) for m, s in ranked if s == PAPER_SCORE), None)
        if paper and paper[0] >= best_mean - TIE:  # within noise of the best: the paper's score (VCL's log det K)
            best_mean, best = paper
        _, values = mean_of(results, config, best)
        out[config] = {
            "score": best,
            "mean_ood_auroc": best_mean,
            "min_ood_auroc": min(values) if values else None,
            "ranking": [{"score": s, "mean_ood_auroc": m} for m, s in ranked],
            "inverted_somewhere": bool(values) and min(values) < 0.5,
        }
    return out


def fmt(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def render(results: dict, defaults: dict) -> str:
    lines = ["| config | default score (rule) | mean OOD AUROC | min OOD AUROC | runner-up |", "|---|---|---|---|---|"]
    for config, d in defaults.items():
        runner = d["ranking"][1] if len(d["ranking"]) > 1 else None
        runner_text = f"{runner['score']} ({fmt(runner['mean_ood_auroc'])})" if runner else "–"
        flag = " (inverted on a set)" if d["inverted_somewhere"] else ""
        lines.append(
            f"| {config} | {d['score']}{flag} | {fmt(d['mean_ood_auroc'])} | {fmt(d['min_ood_auroc'])} | "
            f"{runner_text} |"
        )
    lines += [
        "",
        "Best score of each kind, mean over both suites (OOD: 4 sets; others: 2 datasets):",
        "",
        "| config | score | OOD AUROC | misclf. AUROC | R-AUROC zero-shot | blend ρ | crop | corruption ρ |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for config in defaults:
        for score in ("knn_distance", "density", "epistemic", "combined", defaults[config]["score"]):
            ood, _ = mean_of(results, config, score)
            if ood is None:
                continue
            cells = [
                mean_of(results, config, score, (k,))[0]
                for k in ("misclf_auroc", "r_auroc/other", "blend_rho", "crop_bigger", "corruption_rho")
            ]
            lines.append(f"| {config} | {score} | {fmt(ood)} | " + " | ".join(map(fmt, cells)) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    results = load()
    if not results:
        print("no results in benchmarks/results/uncertainty-*.json: run benchmarks/uncertainty.py first")
        return 1
    defaults = choose_defaults(results)
    (RESULTS / "uncertainty-summary.json").write_text(json.dumps({"defaults": defaults}, indent=1))
    (RESULTS / "uncertainty-summary.md").write_text(render(results, defaults))
    print(render(results, defaults))
    return 0


if __name__ == "__main__":
    sys.exit(main())
