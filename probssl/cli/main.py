"""The ``probssl`` command line: train, eval, report, demo, presets, methods."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

from probssl.config import ConfigError, list_presets, load_config, to_yaml
from probssl.data import DataError
from probssl.train import CheckpointError, TrainingError


class NotWritable(Exception):
    """An output folder that cannot be written (read-only file system, no permission)."""


# Errors that are the user's to fix: one clear message, no traceback.
USER_ERRORS = (
    ConfigError,
    DataError,
    TrainingError,
    CheckpointError,
    FileNotFoundError,
    NotADirectoryError,
    NotWritable,
)


def check_writable(folder: str | Path, what: str, fix: str = "choose another folder (--out)") -> None:
    """Fail before any work is done when ``folder`` (or, not existing yet, the nearest folder above it, where it
    would be created) cannot be written: a read-only output found only after training or evaluating loses it."""
    target = Path(folder)
    while not target.exists() and target != target.parent:
        target = target.parent
    if not target.is_dir() or os.access(target, os.W_OK):
        return
    read_only = bool(os.statvfs(target).f_flag & os.ST_RDONLY)
    raise NotWritable(
        f"cannot write {what} into {folder}: {target} is {'on a read-only file system' if read_only else 'not writable'}"
        f"{'' if read_only else ' (no write permission)'}; make it writable, or {fix}."
    )


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", help="a built-in preset (see `probssl presets`)")
    p.add_argument("--config", help="a YAML config file applied on top of the preset")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config value, e.g. --set train.epochs=5 (repeatable)",
    )


def cmd_train(args) -> int:
    from probssl.evaluation import evaluate_run
    from probssl.train import Trainer, teardown_distributed

    config = load_config(args.preset, args.config, args.overrides)
    run_dir = Path(args.out or f"runs/{args.preset or config.method.name + '-' + config.data.name}")
    check_writable(run_dir, "the run")
    if os.environ.get("RANK", "0") == "0":
        print(f"training {config.method.name} on {config.data.name} into {run_dir}", flush=True)
        if args.show_config:
            print(to_yaml(config), end="", flush=True)
    trainer = Trainer(config, run_dir, resume=args.resume)
    trainer.fit()
    teardown_distributed(trainer.dist)
    if args.eval and os.environ.get("RANK", "0") == "0":
        metrics = evaluate_run(run_dir)
        print(
            json.dumps({k: metrics[k] for k in ("linear_acc", "knn_acc", "effective_rank") if k in metrics}, indent=1)
        )
    return 0


def cmd_eval(args) -> int:
    from probssl.evaluation import evaluate_run

    mode = "quick" if args.quick else "full" if args.full else "default"
    if Path(args.run_dir).is_dir():  # a missing run is load_run's clear error
        check_writable(args.run_dir, "eval.json", fix="copy the run to a writable folder and evaluate the copy")
    metrics = evaluate_run(
        args.run_dir,
        representation=args.representation,
        device=args.device,
        ood=args.ood,
        mode=mode,
        seed=args.seed,
        progress=lambda msg: print(msg, flush=True),
        **({"fine_tune": True} if args.fine_tune else {}),  # else the run's eval.fine_tune (a preset may set it)
        checkpoint=args.checkpoint,
        skip=tuple(args.skip),
        score_precision=args.score_precision,
        **({"retrieval": tuple(args.retrieval)} if args.retrieval is not None else {}),
    )
    width = max(len(k) for k in metrics["summary"])
    for key, value in metrics["summary"].items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"{key:{width}s}  {shown}")
    print(
        f"representation: {metrics['representation']['kind']} ({metrics['representation']['dim']}-d); "
        f"{mode} evaluation in {metrics['eval_seconds']:.1f} s"
    )
    if metrics.get("skipped"):  # e.g. the label-needing sections on unlabelled images
        print(f"skipped: {', '.join(metrics['skipped'])} ({next(iter(metrics['skipped'].values()))})")
    print(f"wrote {Path(args.run_dir) / 'eval.json'}")
    return 0


def cmd_embed(args) -> int:
    from probssl.evaluation.embed import embed, write_embeddings

    check_writable(Path(args.out).parent, Path(args.out).name)
    rows = embed(args.run_dir, data=args.data, split=args.split, device=args.device, checkpoint=args.checkpoint)
    path = write_embeddings(rows, args.out)
    print(f"wrote {len(rows['index'])} rows ({', '.join(rows)}) to {path}")
    return 0


def cmd_export(args) -> int:
    from probssl.train.export import export_run

    check_writable(args.out, "the export")
    out = export_run(args.run_dir, args.out, checkpoint=args.checkpoint)
    print(f"wrote {out}/model.safetensors (backbone), head.safetensors, config.json and README.md")
    return 0


def cmd_report(args) -> int:
    from probssl.report import write_report

    check_writable(args.out, "the report")
    payload = write_report(args.run_dirs, args.out, title=args.title, html=True)
    groups = payload["groups"]
    print(
        f"{len(args.run_dirs)} run(s) in {len(groups)} group(s): "
        + ", ".join(f"{label} (n={g['n']})" for label, g in groups.items())
    )
    print(
        f"wrote {Path(args.out) / 'report.md'}, {Path(args.out) / 'report.html'} (self-contained), "
        f"{Path(args.out) / 'metrics.json'} and {sum(1 for v in payload['plots'].values() if v.endswith('.png'))} "
        "PNG files"
    )
    return 0


def cmd_demo(args) -> int:
    from probssl.cli.demo import run_demo

    check_writable(args.out, "the demo's runs and report")
    run_demo(Path(args.out), epochs=args.epochs, data_dir=args.data_dir)
    return 0


def cmd_presets(args) -> int:
    if args.name:
        print(to_yaml(load_config(args.name)), end="")
    else:
        print("\n".join(list_presets()))
    return 0


def cmd_methods(args) -> int:
    from probssl.methods import list_methods, method_class

    for name in list_methods():
        doc = (method_class(name).__module__ and sys.modules[method_class(name).__module__].__doc__ or "").strip()
        print(f"{name:12s} {doc.splitlines()[0] if doc else ''}")
    return 0


def cmd_runs(args) -> int:
    from probssl.train import list_runs

    rows = list_runs(args.root)
    if not rows:
        print(f"no runs under {args.root}")
        return 0
    header = ("run", "method", "dataset", "status", "step", "loss", "linear_acc")
    table = [header] + [tuple(str(r.get(k, "")) for k in header) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
    return 0


def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a method (preset + overrides)")
    _add_config_args(p)
    p.add_argument("--out", help="run directory (default runs/PRESET)")
    p.add_argument("--resume", help="'auto' to continue from the latest checkpoint, or a checkpoint folder")
    p.add_argument("--eval", action="store_true", help="evaluate the run when training ends")
    p.add_argument(
        "--show-config",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="print the resolved config at start (default; it is also saved as RUN/config.yaml)",
    )
    p.set_defaults(func=cmd_train)


def _eval_parser(sub) -> None:
    from probssl.evaluation import skip_names

    p = sub.add_parser("eval", help="evaluate a trained run (writes RUN_DIR/eval.json and RUN_DIR/eval_images/)")
    p.add_argument("run_dir")
    p.add_argument(
        "--representation",
        choices=["auto", "backbone", "mean", "direction", "sample", "bits"],
        help="representation to evaluate (default: the run's eval.representation, 'auto' = the method's default)",
    )
    p.add_argument(
        "--ood",
        nargs="*",
        default=None,
        metavar="SET",
        help="out-of-distribution sets: synthetic (noise, shuffled, inverted, vflip) or dataset names "
        "loaded from the run's data_dir (e.g. mnist); default: noise shuffled; '--ood' alone: none",
    )
    p.add_argument(
        "--retrieval",
        nargs="*",
        default=None,
        metavar="SET",
        help="datasets (NAME or NAME@DIR) for zero-shot R@1 / R-AUROC (URL); runs trained with data.classes are "
        "also scored on their held-out classes",
    )
    speed = p.add_mutually_exclusive_group()
    speed.add_argument(
        "--quick",
        action="store_true",
        help="probes, geometry, MI and uncertainty/OOD only (no MLP, corruptions, style, t-SNE, images)",
    )
    speed.add_argument(
        "--full",
        action="store_true",
        help="no subsampling caps (style, corruptions, alignment) and the compression curve",
    )
    words = skip_names()
    p.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="SECTION",
        choices=words,
        help="leave out one section or part (repeatable): " + ", ".join(words),
    )
    p.add_argument("--seed", type=int, default=0, help="seed of every random subsample and synthetic set")
    p.add_argument(
        "--fine-tune",
        action="store_true",
        help="also fine-tune the whole network (backbone + linear head; epoch chosen on validation); the run's "
        "eval.fine_tune_* keys set its schedule, eval.fine_tune: true runs it without this flag",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--checkpoint", help="evaluate this checkpoint (step-N) instead of the latest")
    p.add_argument(
        "--score-precision",
        default="same",
        choices=["same", "fp32"],
        help="the uncertainty scores' backbone pass: in the evaluation precision (the run's training precision; "
        "default) or float32 (as probssl did before 2026-12-08: one more pass when that is bf16)",
    )
    p.set_defaults(func=cmd_eval)


def _embed_export_parsers(sub) -> None:
    p = sub.add_parser("embed", help="embeddings, posterior summaries and every uncertainty score of a split")
    p.add_argument("run_dir")
    p.add_argument("--data", help="dataset: NAME or NAME@DIR (default: the run's own)")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--out", required=True, help="FILE.npz, FILE.csv or FILE.parquet")
    p.add_argument("--checkpoint", help="a checkpoint (step-N) instead of the latest")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("export", help="a folder with model.safetensors, config.json and a model card")
    p.add_argument("run_dir")
    p.add_argument("--out", required=True)
    p.add_argument("--checkpoint", help="a checkpoint (step-N) instead of the latest")
    p.set_defaults(func=cmd_export)


def _other_parsers(sub) -> None:
    p = sub.add_parser(
        "report", help="Markdown + self-contained HTML + JSON + plots comparing evaluated runs (mean ± s.e. over seeds)"
    )
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("--out", required=True)
    p.add_argument("--title", default="probssl report")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("demo", help="train SimCLR and VSimCLR on digits, evaluate, report")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--epochs", type=int, default=None, help="override the presets' epochs")
    p.add_argument("--data-dir", default=None)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("runs", help="list runs under a folder with their config, status and latest metrics")
    p.add_argument("root", nargs="?", default="runs")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("presets", help="list presets, or print one as YAML")
    p.add_argument("name", nargs="?")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("methods", help="list the registered methods")
    p.set_defaults(func=cmd_methods)


def build_parser() -> argparse.ArgumentParser:
    import probssl

    parser = argparse.ArgumentParser(prog="probssl", description="Probabilistic self-supervised learning.")
    parser.add_argument("--version", action="version", version=f"probssl {probssl.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _eval_parser(sub)
    _embed_export_parsers(sub)
    _other_parsers(sub)
    return parser


PLUGINS_ENV_VAR = "PROBSSL_PLUGINS"


def import_plugins() -> None:
    """Import the modules named in $PROBSSL_PLUGINS (comma-separated), so that the methods, datasets, backbones
    and evaluation sections they register exist in this process (e.g. for ``probssl train`` / ``eval``)."""
    for name in filter(None, (part.strip() for part in os.environ.get(PLUGINS_ENV_VAR, "").split(","))):
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise ConfigError(
                f"${PLUGINS_ENV_VAR} names module {name!r}, which cannot be imported ({err}); "
                "install it or put its folder on PYTHONPATH"
            ) from None


def _error(message: str) -> None:
    """One line on stderr, once per job: under torchrun only rank 0 speaks."""
    if os.environ.get("RANK", "0") == "0":
        print(f"probssl: error: {message}", file=sys.stderr, flush=True)


def _describe(err: BaseException) -> str:
    """A readable one-line message for an unexpected error (the last line of its traceback)."""
    if isinstance(err, OSError) and err.filename:
        hint = {13: "check the folder's permissions", 28: "free some disk space", 30: "the folder is read-only"}
        fix = hint.get(err.errno or 0, "")
        return f"{err.strerror or err}: {err.filename}" + (f" ({fix})" if fix else "")
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[-1] if text else ''}".rstrip(": ")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # anywhere on the line: show tracebacks instead of one-line messages
    argv = [a for a in argv if a != "--debug"]
    try:
        import_plugins()
        args = build_parser().parse_args(argv)
        return args.func(args)
    except KeyboardInterrupt:
        command = argv[0] if argv else ""
        hint = "; continue with the same command plus --resume auto" if command == "train" else ""
        _error(f"interrupted{hint}")
        return 130
    except USER_ERRORS as err:
        if debug:
            raise
        _error(str(err))
        return 2
    except Exception as err:  # anything else: still one clear line, the traceback only with --debug
        if debug:
            raise
        _error(f"{_describe(err)} (run again with --debug for the traceback)")
        return 1


if __name__ == "__main__":
    sys.exit(main())
