"""Training throughput of probssl on CPU, side by side with the bare backbone and a peer pipeline.

    python benchmarks/throughput.py [--quick] [--out benchmarks/results] [--peer lightly|pil|none]
                                    [--precision fp32,bf16] [--compile]

Every row is measured in fresh subprocesses (so its peak RSS, ``ru_maxrss``, is its own), fp32 unless
``--precision`` says otherwise,
``torch.set_num_threads(2)``, batch 256 images x 2 views. A row's figure is the median time of
single training steps after warm-up, reported as *images/s = 256 / median step time* (each image
is seen as 2 views, so the backbone processes 512 images a step).

Rows, for each backbone (``convnet`` on 1x28x28 grey, ``resnet18-cifar`` on 3x32x32 colour):

* probssl methods -- ``probssl.train.Trainer(config, run_dir, splits=synthetic)`` built from the
  presets ``simclr-mnist``, ``vsimclr-mnist``, ``scl-gaussian-mnist``, ``scl-bernoulli-mnist``,
  ``simvae-mnist`` (``train.batch_size=256``; ``model.backbone`` set for every row, since the SimVAE
  preset uses an MLP; the ResNet rows use the CIFAR SimCLR crop/flip ``augment.crop_scale=[0.08, 1]``,
  ``augment.hflip_p=0.5``), timing the real step of ``probssl train``: index -> batched augmentation
  of both views -> forward -> loss -> backward -> optimiser. When ``Trainer`` accepts ``callbacks``
  the steps are those of ``trainer.fit()``, timed by a callback (``StepTimer``); otherwise (and in
  the same-process A/B, which interleaves single steps) by calling ``trainer.train_step(index)``.
* bare backbone -- the same backbone's forward + ``features.sum()`` + backward + fused AdamW step on
  pre-made tensors of 2 x 256 images: no augmentation, head or loss. The limit of any pipeline.
* peer -- ``lightly``'s SimCLR pipeline (``SimCLRTransform`` per PIL image in a torch ``DataLoader``
  with 2 workers, ``SimCLRProjectionHead``, ``NTXentLoss``) on the same probssl backbone, with the
  same augmentation recipe as the probssl rows; it runs in a separate venv (``benchmarks/peer_setup.py``).
  ``--peer pil`` instead uses a per-image PIL/numpy implementation of the same recipe in a
  ``DataLoader`` with 2 workers and probssl's own head and loss (no extra packages).

On this shared 2-core machine one process can run 20-30% faster or slower than the next with no
other load visible, so the convnet rows are measured in several rounds (fresh processes, the order
reversed every round), and the bare backbone, SimCLR and VSimCLR are measured once more *in one
process with their steps interleaved*, whose adjacent-step ratios give the first two targets.
A row during which other processes used > 10% of the cores (from /proc/stat) is measured again.

Targets (issue #11; per backbone, in the JSON and Markdown; thresholds in ``harness/analysis.py``): SimCLR >= 0.9x
the bare backbone and VSimCLR's step <= 1.05x SimCLR's (fp32, same-process ratios); SimCLR >= 0.9x bare in each
bf16 / compile variant; a bf16 row's peak RSS <= 1.05x its fp32 row's; the fastest probssl SimCLR variant >= 2x the
peer on the convnet and, on ResNet-18 (set for a CPU with AMX), >= 2.5x the peer, >= 1.5x the peer with bf16 and
>= 35 % of the best matmul peak (round-paired ratios).

Each row also reports its FLOPs per step (forward + backward, ``torch.utils.flop_counter.FlopCounterMode``),
achieved GFLOP/s and its fraction of the machine's best matmul peak (fp32 and bf16 measured by a
few-second probe before the rows), and the JSON and Markdown name the CPU and its bf16 flags.
``--precision fp32,bf16`` measures the bare, SimCLR and peer rows at each precision (bf16 = autocast;
on a CPU without native bf16 it is emulated and much slower -- a correct measurement, labelled so);
``--compile`` adds ``torch.compile`` variants of the bare and SimCLR rows (not of the peer, which
runs as its users run it). The other methods run at the first listed precision.

``--quick`` measures only the convnet rows with few steps, as a smoke check; it writes to a
temporary directory unless ``--out`` is given. Before measuring, the script waits (``--max-load``,
``--load-wait``) until the 1-minute load average is below 1.0, and records the load averages.
``--set KEY=VALUE`` adds a config override to every probssl row (e.g. ``model.channels_last=true``).
``--profile ROW`` (e.g. ``convnet/simclr``, ``convnet/peer-lightly``) runs one row under
``torch.profiler`` and prints the phase times and the by-op table instead.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import peer_setup  # noqa: E402  (stdlib only at import time)
from harness import machine  # noqa: E402
from harness.rows import BACKBONES  # noqa: E402
from harness.subprocess_protocol import emit_result  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="convnet rows only, few steps (a smoke check)")
    parser.add_argument(
        "--out", default=None, help="results directory (default benchmarks/results; a temporary directory with --quick)"
    )
    parser.add_argument(
        "--peer",
        choices=("lightly", "pil", "none"),
        default=None,
        help="peer pipeline (default: lightly if its venv exists, else pil)",
    )
    parser.add_argument(
        "--peer-venv",
        default=peer_setup.DEFAULT_VENV,
        help="venv made by benchmarks/peer_setup.py (default: %(default)s; env PROBSSL_BENCH_VENV)",
    )
    parser.add_argument("--backbones", nargs="+", choices=list(BACKBONES), default=None)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra config override for every probssl row, e.g. --set model.channels_last=true",
    )
    parser.add_argument(
        "--precision",
        default="fp32",
        help="comma-separated precisions of the bare, SimCLR and peer rows, e.g. fp32,bf16 (default %(default)s)",
    )
    parser.add_argument("--compile", action="store_true", help="add torch.compile variants of the bare and SimCLR rows")
    parser.add_argument(
        "--steps", type=int, default=None, help="1 warm-up + this many timed steps per row, one round (smoke check)"
    )
    parser.add_argument(
        "--peak-sizes",
        type=int,
        nargs="+",
        default=list(machine.PEAK_SIZES),
        help="matrix sizes of the matmul peak probe",
    )
    return parser


def _add_run_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-load", type=float, default=1.0, help="wait until the 1-min load average is below this")
    parser.add_argument(
        "--load-wait", type=float, default=None, help="seconds to wait at most for that (default 600, 0 with --quick)"
    )
    parser.add_argument("--timeout", type=float, default=300, help="seconds per row")
    parser.add_argument(
        "--max-foreign",
        type=float,
        default=0.1,
        help="a row during which other processes used more than this fraction of the cores "
        "is measured again (default %(default)s)",
    )
    parser.add_argument("--retries", type=int, default=1, help="re-measurements of a contended row")
    parser.add_argument(
        "--retry-until",
        type=float,
        default=420,
        help="no re-measurement once this many seconds have passed (keeps the run < 15 min)",
    )
    parser.add_argument("--profile", metavar="ROW", help="profile one row (e.g. convnet/simclr) and exit")
    parser.add_argument("--profile-steps", type=int, default=5)
    parser.add_argument("--profile-sort", default="self_cpu_time_total")
    parser.add_argument("--profile-rows", type=int, default=30)
    parser.add_argument("--worker", help=argparse.SUPPRESS)


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    _add_run_flags(parser)
    args = parser.parse_args(argv)
    if args.worker:  # a child process: measure one row and print its JSON line
        from harness.worker import worker

        emit_result(worker(json.loads(args.worker)))
        return
    from harness import driver

    bad = [p for p in args.precision.split(",") if p.strip() not in ("fp32", "bf16", "fp16")]
    if bad:
        parser.error(f"--precision: unknown {', '.join(bad)} (choose from fp32, bf16, fp16)")
    peer_python = str(peer_setup.venv_python(args.peer_venv))
    if args.profile:
        driver.profile_row(args.profile, peer_python, args)
        return
    peer = args.peer or ("lightly" if Path(peer_python).exists() else "pil")
    if peer == "lightly" and not Path(peer_python).exists():
        sys.exit(
            f"--peer lightly needs the peer venv {args.peer_venv}: run `python3 benchmarks/peer_setup.py` "
            "(or use --peer pil)"
        )
    if args.out:
        out = Path(args.out)
    else:
        out = Path(tempfile.mkdtemp(prefix="throughput-quick-")) if args.quick else HERE / "results"
    load_wait = args.load_wait if args.load_wait is not None else (0 if args.quick else 600)
    driver.run_benchmark(args, peer, peer_python, out, load_wait)


if __name__ == "__main__":
    main()
