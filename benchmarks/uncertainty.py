"""The uncertainty benchmark: every probabilistic method (and SimCLR / SupCon), every score, every protocol.

    python benchmarks/uncertainty.py --dataset mnist            # then --dataset fashion-mnist (or both at once,
    python benchmarks/uncertainty.py --dataset fashion-mnist    # one thread each, on a 2-core machine)
    python benchmarks/uncertainty.py --dataset digits --seeds 0 --configs simclr vsimclr --epochs 1   # smoke run

For each config x seed: train with the config's preset at the stated budget, then evaluate every score on
  * OOD detection against the other dataset and uniform noise (AUROC, FPR95),
  * misclassification of the linear probe (AUROC), selective classification (AURC, AUGRC),
  * URL's R-AUROC zero-shot on the other dataset, and on held-out classes for the ``*-heldout`` configs
    (trained with data.classes = [0..4]),
  * blend rho (ambiguity H(lambda)), croppedHasBiggerUnc, and rho with corruption severity (mean over kinds).
Runs are resumable (a run with eval.json is skipped). Outputs:
  runs/uncertainty/DATASET/CONFIG/seedS/            each run
  benchmarks/results/uncertainty-DATASET.json       every score's metrics, mean +- s.e. over seeds, per config
  benchmarks/results/uncertainty-DATASET.md         the tables, the budget, machine, date and command
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OTHER = {"mnist": "fashion-mnist", "fashion-mnist": "mnist", "digits": "noise"}
HELD_OUT_CLASSES = "[0, 1, 2, 3, 4]"
# label -> (preset template, extra overrides)
CONFIGS = {
    "simclr": ("simclr-{d}", []),
    "supcon": ("supcon-{d}", []),
    "vsimclr": ("vsimclr-{d}", []),
    "vsimclr-paper": ("vsimclr-paper-{d}", []),
    "vsupcon": ("vsupcon-{d}", []),
    "scl-gaussian": ("scl-gaussian-{d}", []),
    "simvae": ("simvae-{d}", []),
    "vsimclr-vmf": ("vsimclr-{d}", ["method.posterior_family=vmf"]),
    "vsimclr-power-spherical": ("vsimclr-{d}", ["method.posterior_family=power-spherical"]),
    "mcinfonce": ("mcinfonce-{d}", []),
    "simclr-losspred": ("simclr-{d}", ["method.loss_prediction=true"]),
    "vsimclr-losspred": ("vsimclr-{d}", ["method.loss_prediction=true"]),
    "uncertainty": ("uncertainty-{d}", []),  # the recommended preset: vsimclr + the epistemic head
    "simclr-heldout": ("simclr-{d}", [f"data.classes={HELD_OUT_CLASSES}"]),
    "vsimclr-heldout": ("vsimclr-{d}", [f"data.classes={HELD_OUT_CLASSES}"]),
}
DEFAULT_CONFIGS = [
    "uncertainty",
    "simclr",
    "vsimclr",
    "vsimclr-paper",
    "vsimclr-vmf",
    "mcinfonce",
    "simclr-losspred",
    "vsupcon",
    "supcon",
    "scl-gaussian",
    "simvae",
    "simclr-heldout",
    "vsimclr-heldout",
]
EVAL_SKIP = ("mlp", "clustering", "information", "style", "embedding_map", "images", "compression")


def train(label: str, dataset: str, seed: int, args) -> Path:
    preset, extra = CONFIGS[label]
    out = args.runs / dataset / label / f"seed{seed}"
    overrides = [f"train.seed={seed}", f"train.epochs={args.epochs}", "train.progress=false", *extra, *args.set]
    if args.train_subset:
        overrides.append(f"data.train_subset={args.train_subset}")
    if args.threads:
        overrides.append(f"train.num_threads={args.threads}")
    sets = sum((["--set", o] for o in overrides), [])
    cmd = [
        sys.executable,
        "-m",
        "probssl",
        "train",
        "--preset",
        preset.format(d=dataset),
        "--out",
        str(out),
        "--resume",
        "auto",
        *sets,
    ]
    log = out.parent / f"seed{seed}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {}))
    with open(log, "a") as f:
        f.write(f"$ {shlex.join(cmd)}\n")
        f.flush()
        subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    return out


def evaluate(run: Path, dataset: str) -> dict:
    from probssl.evaluation import evaluate_run

    other = OTHER[dataset]
    ood = [other, "noise"] if other != "noise" else ["noise"]
    retrieval = (other,) if other != "noise" else ()
    return evaluate_run(
        run,
        ood=ood,
        retrieval=retrieval,
        skip=EVAL_SKIP,
        corruption_samples=200,
        ambiguity_samples=200,
        ood_max_images=1000,
        retrieval_max_images=2000,
        mc_samples=16,
    )


def score_metrics(m: dict, name: str, other: str) -> dict[str, float]:
    """The benchmark's numbers of one score in one eval.json (missing ones are left out)."""
    u = m["uncertainty"]["scores"][name]
    out = {
        "misclf_auroc": u["misclassification"]["auroc"],
        "aurc": u["selective"]["aurc"],
        "augrc": u["selective"]["augrc"],
    }
    for ood, r in u["ood"].items():
        key = "other" if ood == other else ood
        out[f"ood_auroc/{key}"], out[f"ood_fpr95/{key}"] = r["auroc"], r["fpr95"]
    corr = [r["spearman"] for r in u.get("corruption", {}).values() if r["spearman"] is not None]
    if corr:
        out["corruption_rho"] = sum(corr) / len(corr)
    for target, t in (m.get("retrieval") or {}).get("targets", {}).items():
        key = "other" if target == other else "heldout"
        out[f"r_auroc/{key}"] = t["R-AUROC"][name]
    a = (m.get("ambiguity") or {}).get("scores", {}).get(name)
    if a:
        out["blend_rho"], out["crop_bigger"] = a["blend_spearman"], a["crop_bigger"]
    return {k: v for k, v in out.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}


def default_score(preset: str, overrides: list[str], image_shape=(1, 28, 28)) -> str:
    """The score this probssl reports by default for a trained run of ``preset`` + ``overrides`` (eval.json records
    the one of its own version): with the epistemic head, the default as configured (the head's scores exist once
    it is fitted); else the first of the method's scores, or the kNN distance for a deterministic method."""
    config, method = built(preset, overrides, image_shape)
    if config.method.epistemic:
        return config.method.uncertainty_score or type(method).default_uncertainty or method.uncertainty_kinds()[0]
    return method.uncertainty_kinds()[0] if method.probabilistic else "knn_distance"


def posterior_score(preset: str, overrides: list[str], image_shape=(1, 28, 28)) -> str | None:
    """The score of the posterior itself for a trained run of ``preset`` + ``overrides``: the method's
    evidence-chosen posterior score (``Method.aleatoric_kind``, what it reports without the epistemic head);
    None for a deterministic method."""
    _, method = built(preset, overrides, image_shape)
    return method.aleatoric_kind() if method.probabilistic else None


def built(preset: str, overrides: list[str], image_shape) -> tuple:
    """(config, untrained method) of ``preset`` + ``overrides``: what its class and config say about its scores.
    Built once per argument set (``default_score`` and ``posterior_score`` of one config share it); callers only
    read it."""
    return _built(preset, tuple(overrides), tuple(image_shape))


@functools.cache
def _built(preset: str, overrides: tuple[str, ...], image_shape: tuple[int, ...]) -> tuple:
    from probssl.config import load_config
    from probssl.methods import create_method

    config = load_config(preset, overrides=list(overrides))
    return config, create_method(config, image_shape)


def current_default(label: str, dataset: str) -> str | None:
    """:func:`default_score` of one of this suite's configs."""
    preset, extra = CONFIGS[label]
    return default_score(preset.format(d=dataset), extra)


def mean_se(values: list[float]) -> dict:
    n = len(values)
    mean = sum(values) / n
    se = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n) if n > 1 else None
    return {"mean": mean, "se": se, "n": n}


def aggregate(evals: dict[str, list[dict]], other: str) -> dict:
    """{config: {"primary", "linear_acc", "R@1/...", "scores": {score: {metric: mean_se}}}}."""
    out = {}
    for label, ms in evals.items():
        names = ms[0]["uncertainty"]["scores_available"]
        per_score = {}
        for name in names:
            rows = [score_metrics(m, name, other) for m in ms]
            keys = sorted({k for r in rows for k in r})
            per_score[name] = {k: mean_se([r[k] for r in rows if k in r]) for k in keys}
        default = current_default(label, ms[0]["splits"]["dataset"])
        entry = {
            # this probssl's default for the config, if these runs have it (runs trained before a default head
            # existed lack its score); else the one their eval.json reported
            "primary": default if default in per_score else ms[0]["uncertainty"]["primary"],
            "primary_when_evaluated": ms[0]["uncertainty"]["primary"],
            "seeds": [m["run"]["seed"] for m in ms],
            "linear_acc": mean_se([m["summary"]["linear_acc"] for m in ms]),
            "scores": per_score,
            "budget": {"epochs": ms[0]["config"]["train"]["epochs"], "train_images": ms[0]["splits"]["train"]},
        }
        for target in (ms[0].get("retrieval") or {}).get("targets", {}):
            key = "other" if target == other else "heldout"
            entry[f"R@1/{key}"] = mean_se([m["retrieval"]["targets"][target]["R@1"] for m in ms])
        out[label] = entry
    return out


COLUMNS = [
    ("ood_auroc/other", "OOD AUROC other ↑"),
    ("ood_auroc/noise", "OOD AUROC noise ↑"),
    ("ood_fpr95/other", "FPR95 other ↓"),
    ("misclf_auroc", "misclf. AUROC ↑"),
    ("aurc", "AURC ↓"),
    ("augrc", "AUGRC ↓"),
    ("r_auroc/other", "R-AUROC zero-shot ↑"),
    ("r_auroc/heldout", "R-AUROC held-out ↑"),
    ("blend_rho", "blend ρ ↑"),
    ("crop_bigger", "crop ↑"),
    ("corruption_rho", "corruption ρ ↑"),
]


def cell(x: dict | None) -> str:
    if not x:
        return "–"
    return f"{x['mean']:.3f}" + (f" ± {x['se']:.3f}" if x.get("se") is not None else "")


def render(results: dict, meta: dict) -> str:
    lines = [
        f"# Uncertainty benchmark: {meta['dataset']}",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['machine']}  ",
        f"Date: {meta['date']}  ",
        f"Budget: {meta['budget']}; OOD 'other' = {meta['other']}; mean ± s.e. over seeds.",
        "",
    ]
    header = ["config", "score"] + [c for _, c in COLUMNS]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, entry in results.items():
        for name, metrics in entry["scores"].items():
            mark = " **(default)**" if name == entry["primary"] else ""
            lines.append("| " + " | ".join([label, name + mark] + [cell(metrics.get(k)) for k, _ in COLUMNS]) + " |")
    lines += ["", "| config | linear acc | R@1 zero-shot | R@1 held-out | seeds |", "|---|---|---|---|---|"]
    for label, e in results.items():
        lines.append(
            f"| {label} | {cell(e['linear_acc'])} | {cell(e.get('R@1/other'))} | {cell(e.get('R@1/heldout'))} "
            f"| {e['seeds']} |"
        )
    return "\n".join(lines) + "\n"


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return f"{model}, {os.cpu_count()} cores, torch {torch.__version__}, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, choices=sorted(OTHER))
    p.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, choices=sorted(CONFIGS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--train-subset", type=int, default=20000)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--set", action="append", default=[], help="extra override for every run")
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "uncertainty")
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    tic, evals = time.time(), {}
    for seed in args.seeds:  # seed-major: every config gets its first seed before any gets a second
        for label in args.configs:
            if label.endswith("-heldout") and seed != args.seeds[0]:
                continue  # held-out-class runs: one seed (they cost a full run each)
            run = args.runs / args.dataset / label / f"seed{seed}"
            if not (run / "eval.json").exists():
                t0 = time.time()
                train(label, args.dataset, seed, args)
                evaluate(run, args.dataset)
                print(f"{label} seed {seed}: {time.time() - t0:.0f} s", flush=True)
            evals.setdefault(label, []).append(json.loads((run / "eval.json").read_text()))
            write_results(evals, args, tic)  # after every run: a partial suite is already readable
    return 0


def write_results(evals: dict[str, list[dict]], args, tic: float) -> None:
    results = aggregate(evals, OTHER[args.dataset])
    meta = {
        "dataset": args.dataset,
        "other": OTHER[args.dataset],
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": shlex.join(["python", *sys.argv]),
        "budget": f"{args.epochs} epochs on {args.train_subset or 'all'} training images",
        "seconds": round(time.time() - tic),
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"uncertainty-{args.dataset}.json").write_text(
        json.dumps({"meta": meta, "results": results}, indent=1)
    )
    (args.results / f"uncertainty-{args.dataset}.md").write_text(render(results, meta))
    print(f"wrote {args.results / f'uncertainty-{args.dataset}.md'} ({meta['seconds']} s)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
