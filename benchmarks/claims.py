"""The papers' claims at a real budget (issue #16): every method x 3 seeds x MNIST and Fashion-MNIST, evaluated
with the uncertainty protocol and the equal-size comparisons, one committed record per run.

    PROBSSL_DATA=../shared/data OMP_NUM_THREADS=2 python benchmarks/claims.py                 # the whole suite
    PROBSSL_DATA=../shared/data python benchmarks/claims.py --datasets mnist --seeds 0        # one seed first
    python benchmarks/claims.py --report-only                                                 # tables from records
    PROBSSL_DATA=../shared/data python benchmarks/claims.py --fit-missing-heads               # see EPISTEMIC
    python benchmarks/claims.py --datasets digits --seeds 0 --configs simclr simvae --epochs 1 \\
        --records /tmp/claims --runs /tmp/claims-runs --out /tmp/claims-report                # a smoke run

Budget: every config trains its ``METHOD-DATASET`` preset on the full training split (54,000 images after the
validation carve) for ``--epochs`` (default 20) epochs, contrastive and generative alike. Each run is then
evaluated once with every section plus

* the uncertainty protocol of ``benchmarks/uncertainty.py``: OOD against the other dataset and uniform noise,
  misclassification, selective classification, R-AUROC zero-shot on the other dataset, blend and corruption rho;
* ``style_at_dim``: the content and style probes on the representation reduced by PCA to SimVAE's latent size
  (``--style-dim``, default 10), so that style is compared at equal dimension;
* ``quantized``: the representation stored in 32 ... 512 bits (PCA + sign or 8-bit levels), the baseline SCL's
  Bernoulli codes of the same size are set against (the ``scl-bits-B`` configs train B-bit codes).

Resumable across sessions: each finished run leaves ``benchmarks/results/claims/DATASET/CONFIG/seedS.json`` (the
numbers, budget, seed, precision, machine and timings; no per-image arrays), which is committed; a config whose
record exists is skipped, and an interrupted training continues from its last checkpoint in ``--runs``. The
order is seed-major (every config's first seed before any second) and dataset-minor, so a suite stopped early
covers every method. ``--report-only`` (also run after every record) writes ``--out``.json/.md: mean +- s.e. over
the recorded seeds, each claim's verdict with its numbers, and which rows are complete.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "harness"))
sys.path.insert(0, str(HERE))
import torch  # noqa: E402
from claims_report import CONFIGS, EPISTEMIC, OTHER, SCL_BITS, SUPERVISED, report  # noqa: E402
from results import run_probssl  # noqa: E402
from uncertainty import score_metrics  # noqa: E402

from probssl.evaluation import skip_names  # noqa: E402
from probssl.train.logging import read_status  # noqa: E402

GENERATIVE_PREFIXES = ("simvae", "vae", "beta", "cr")  # presets simvae-*, vae-*, beta-vae-*, cr-vae-*
EVAL = dict(  # the uncertainty suite's sizes (benchmarks/uncertainty.py), so the two read alike
    score_precision="fp32",  # as every record's evaluation made its scores (the default became "same" mid-suite)
    corruption_samples=200,
    ambiguity_samples=200,
    ood_max_images=1000,
    retrieval_max_images=2000,
    mc_samples=16,
    skip=("embedding_map", "images"),
)


def suite_overrides(args) -> list[str]:
    """The overrides the command line adds to every run (``--set``, ``--threads``); each record keeps them."""
    return [*args.set, *([f"train.num_threads={args.threads}"] if args.threads else [])]


def train(run: Path, preset: str, overrides: list[str], args) -> float:
    """Train (or resume) one run to ``--epochs`` epochs (``--epochs-generative`` for the VAE family); the wall
    seconds spent in this call."""
    epochs = args.epochs_generative if preset.split("-")[0] in GENERATIVE_PREFIXES else args.epochs
    if run.exists() and read_status(run)["status"] == "finished":
        return 0.0
    sets = [f"train.epochs={epochs}", "train.progress=false", *overrides, *suite_overrides(args)]
    resume = ["--resume", "auto"] if run.exists() else []
    tic = time.perf_counter()
    run_probssl("train", "--preset", preset, "--out", str(run), *resume, *sum((["--set", s] for s in sets), []))
    return time.perf_counter() - tic


def protocol_sets(dataset: str) -> dict[str, tuple[str, ...]]:
    """The uncertainty protocol's OOD and retrieval sets of a dataset's runs: the other dataset (when there is one)
    and uniform noise."""
    other = OTHER[dataset]
    if other == "noise":
        return {"ood": ("noise",), "retrieval": ()}
    return {"ood": (other, "noise"), "retrieval": (other,)}


def evaluate(run: Path, dataset: str, args) -> dict:
    from probssl.evaluation import evaluate_run

    extra = {"style_at_dim": {"dims": [args.style_dim]}, "quantized": {"bits": list(SCL_BITS)}}
    return evaluate_run(run, extra=extra, **protocol_sets(dataset), **EVAL)


def record_of(m: dict, label: str, run: Path, seconds: dict, other: str) -> dict:
    """The committed record of one evaluated run: its numbers without per-image arrays."""
    status = json.loads((run / "status.json").read_text())
    env = json.loads((run / "environment.json").read_text())
    u = m.get("uncertainty") or {}
    return {
        "config": label,
        "preset": CONFIGS[label][0].format(d=m["run"]["dataset"]),
        # the config's overrides as this run trained: a run started before EPISTEMIC joined its config has no head
        "overrides": [o for o in CONFIGS[label][1] if o not in EPISTEMIC or m["config"]["method"].get("epistemic")],
        "supervised": label in SUPERVISED,
        "dataset": m["run"]["dataset"],
        "seed": m["run"]["seed"],
        "budget": {
            "epochs": m["config"]["train"]["epochs"],
            "steps": m["run"]["step"],
            "train_images": m["splits"]["train"],
        },
        "precision": status.get("precision"),
        "precision_reason": status.get("precision_reason"),
        "compile": status.get("compile"),
        "cpu": env.get("cpu"),
        "torch": env.get("torch"),
        "probssl": env.get("probssl"),
        "git_commit": env.get("git_commit"),
        "seconds": seconds,
        "date": today(),
        "summary": {k: v for k, v in m["summary"].items() if isinstance(v, (int, float))},
        "primary_score": u.get("primary"),
        "scores": {name: score_metrics(m, name, other) for name in u.get("scores", {})},
        "style_at_dim": m.get("style_at_dim"),
        "quantized": m.get("quantized"),
        "compression": {k: v for k, v in (m.get("compression") or {}).items() if k != "curve"},
    }


def run_one(label: str, dataset: str, seed: int, args) -> Path:
    """Train, evaluate and record one (config, dataset, seed) unless its record exists; the record's path."""
    path = args.records / dataset / label / f"seed{seed}.json"
    if path.exists():
        return path
    preset, overrides = CONFIGS[label]
    run = args.runs / dataset / label / f"seed{seed}"
    train_s = train(run, preset.format(d=dataset), [f"train.seed={seed}", *overrides], args)
    tic = time.perf_counter()
    m = evaluate(run, dataset, args)
    seconds = {"train_this_session": round(train_s, 1), "eval": round(time.perf_counter() - tic, 1)}
    rec = record_of(m, label, run, seconds, OTHER[dataset]) | {"suite_overrides": suite_overrides(args)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rec, indent=1) + "\n")
    tmp.replace(path)  # a record is whole or absent
    del m
    gc.collect()
    print(f"[claims] {dataset} {label} seed {seed}: train {train_s:.0f} s, eval {seconds['eval']:.0f} s", flush=True)
    return path


POSTHOC_KEEP = ("probes", "uncertainty", "corruptions", "retrieval", "ambiguity")  # what the scores' metrics read


def fit_head_after_the_fact(path: Path, args) -> bool:
    """Add the epistemic head's scores to a record whose run was trained without the head (records written before
    ``EPISTEMIC`` joined its config). The head is fitted when training ends and changes no weight, so fitting it on
    the final checkpoint in memory (the run's files are untouched) gives the model the run would have had with it.
    The uncertainty protocol's sections are evaluated again (same sizes and seeds) and the new scores are added
    to ``scores``, named in ``posthoc_scores``; the re-evaluated default score must reproduce the record's own
    numbers (a check that it is the same protocol), else nothing is written. True when the record changed."""
    from probssl.data import load_splits
    from probssl.evaluation import EvalOptions, evaluate_method
    from probssl.train import load_run
    from probssl.train.device import choose_precision

    rec = json.loads(path.read_text())
    if not set(EPISTEMIC) <= set(CONFIGS[rec["config"]][1]) or "epistemic" in rec["scores"]:
        return False
    run, other = args.runs / rec["dataset"] / rec["config"] / f"seed{rec['seed']}", OTHER[rec["dataset"]]
    config, method, _ = load_run(run)
    splits = load_splits(config.data)
    method.attach_feature_density()
    method.on_train_end(splits.train.images)
    skip = tuple(n for n in skip_names() if n not in POSTHOC_KEEP)
    opts = EvalOptions.make(
        "default",
        config.eval,
        **{**EVAL, "skip": skip},
        **protocol_sets(rec["dataset"]),
        precision=choose_precision(config.train.precision, torch.device("cpu")).precision,
    )
    m = evaluate_method(method, splits, opts, "cpu", config=config)
    primary = rec["primary_score"]
    again, before = score_metrics(m, primary, other), rec["scores"][primary]
    drift = {k: abs(again[k] - v) for k, v in before.items() if k in again and abs(again[k] - v) > 1e-6}
    if drift:
        print(f"[claims] {path}: the re-evaluated {primary} differs from the record ({drift}); not written")
        return False
    new = [k for k in method.extra_uncertainty_kinds() if k not in rec["scores"]]
    rec["scores"].update({k: score_metrics(m, k, other) for k in new})
    rec["posthoc_scores"] = {
        "scores": new,
        "how": "head fitted on the final checkpoint after training",
        "date": today(),
    }
    path.write_text(json.dumps(rec, indent=1) + "\n")
    print(f"[claims] {path}: added {new}", flush=True)
    return True


def today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist"], choices=sorted(OTHER))
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--epochs-generative", type=int, default=None, help="epochs of the VAE family (default --epochs)")
    p.add_argument("--style-dim", type=int, default=10, help="dimension of the equal-size style probes")
    p.add_argument("--threads", type=int, default=None, help="train.num_threads of every run")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every run")
    p.add_argument("--report-only", action="store_true", help="write the report from the records; train nothing")
    p.add_argument(
        "--fit-missing-heads",
        action="store_true",
        help="add the epistemic head's scores to records whose runs were trained without it; train nothing",
    )
    p.add_argument("--records", type=Path, default=HERE / "results" / "claims")
    p.add_argument("--runs", type=Path, default=HERE.parent / "runs" / "claims")
    p.add_argument("--out", type=Path, default=HERE / "results" / "claims-report")
    p.add_argument("--docs", type=Path, default=None, help="also rewrite the generated tables of this page")
    args = p.parse_args(argv)
    args.epochs_generative = args.epochs_generative or args.epochs
    failed: list[tuple[str, str, int]] = []
    if args.fit_missing_heads:
        for seed, dataset, label in itertools.product(args.seeds, args.datasets, args.configs):
            path = args.records / dataset / label / f"seed{seed}.json"
            if path.exists():
                fit_head_after_the_fact(path, args)
    elif not args.report_only:
        for seed in args.seeds:  # seed-major: every config's first seed before any second
            for dataset in args.datasets:
                for label in args.configs:
                    try:
                        run_one(label, dataset, seed, args)
                    except (SystemExit, Exception) as err:  # one failed run must not stop a days-long suite
                        print(f"[claims] {dataset} {label} seed {seed} FAILED (no record; rerun retries it): {err}")
                        failed.append((dataset, label, seed))
                        continue
                    report(args)
    report(args)
    print(args.out.with_suffix(".md").read_text())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
