"""Every paper-protocol preset (VCL, SCL, SimVAE and its VAE baselines, MoCo v2 at their papers' scale), built and
stepped, with its peak memory and the projected wall time of its full protocol.

    python benchmarks/paper_protocols.py --quick                      # every preset: build + 2 steps at batch 4
    python benchmarks/paper_protocols.py --quick --only simclr-cifar10 simvae-cifar10
    python benchmarks/paper_protocols.py --quick --build-only scl-gaussian-imagenet scl-bernoulli-imagenet
    python benchmarks/paper_protocols.py --quick --tiny               # CI: every preset, tiny sizes (~35 s, 1 thread)

``--quick`` loads each preset (``load_config(preset)``: every key checked) and builds its method through
``probssl.train.Trainer`` on data of the preset's shape: the real dataset when ``probssl.data.load_splits`` finds its
files with ``data.download=false`` (its first few images are used), else synthetic uint8 images of the dataset's
native shape or ``data.image_size`` (``benchmarks/harness/runners.py: synthetic_splits``); the ``data`` column says
which. It runs ``--steps`` optimiser steps at a tiny ``--batch`` (the first is a warm-up, excluded from the timing)
and checks that every loss is finite. Presets given to ``--build-only`` are built (model, optimiser), not stepped.

``--tiny`` makes the pass cheap enough for CI on a CPU while every preset still builds and steps its own method,
backbone, head, loss, optimiser, augmentation recipe and decoder: synthetic data only (a real set on disk is never
read), batch 2 unless ``--batch`` is given, and ``data.image_size`` shrunk to ``TINY_SIDE`` px wherever the network
is the same at that size (``tiny_image_size``: the ResNets end in a global average pool, so their layers and
parameter counts do not depend on the image side; SimVAE's ``simvae-resnet18`` picks its stem and flatten width
from the side and its decoder makes only 32 or 64 px, so its presets keep their native size). The blur kernel,
~10% of the side, shrinks with the image. Tiny rows are marked (``tiny`` in the JSON, the status and the table) and
have no projection: a step on a 16 px image says nothing about the cost of the 224 px protocol. Without
``OMP_NUM_THREADS`` set it uses one torch thread (``limit_threads_for_tiny``).

One row per preset: method, backbone, image shape, parameters, data, seconds per step and images/s at the tiny batch,
the peak memory of building and stepping it (CUDA: ``torch.cuda.max_memory_allocated``; CPU: the growth of the
process's peak resident set over its size before the preset, the peak reset through ``/proc/self/clear_refs`` on
Linux, else ``getrusage`` ``ru_maxrss`` growth, which misses a peak below an earlier preset's), and the projected
wall time of the full protocol on this device:

    projected = step seconds at --batch x (preset batch / --batch) x epochs x floor(train images / preset batch)

a linear scaling of the step time with the batch (an estimate: a device is rarely saturated at batch 4, so the
projection from a tiny batch is an upper bound on a GPU and rough on a CPU). The training images are the real
split's when the data loaded, else the dataset's official training-set size (``OFFICIAL_TRAIN_SIZES``) less the
validation carve ``round(data.val_fraction x n)`` the reader takes from it, capped by ``data.train_subset``.

The full protocols are ``probssl train --preset NAME`` (each preset's header names its sources; docs/paper-protocols.md
lists the commands). Exit status: 0 when every row passed, 1 when a row failed (its error printed), 2 for unknown
preset names.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import math
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS))

VCL_DATASETS = ("cifar10", "cifar100", "stl10", "tiny-imagenet")
PAPER_PRESETS: tuple[str, ...] = (
    *(f"{m}-{d}" for m in ("simclr", "vsimclr", "supcon", "vsupcon") for d in VCL_DATASETS),
    *(f"scl-{latent}-{d}" for latent in ("gaussian", "bernoulli") for d in ("cifar10", "imagenet")),
    *(f"{m}-{d}" for m in ("simvae", "vae", "beta-vae", "cr-vae") for d in ("cifar10", "celeba")),
    *(f"moco-{d}" for d in VCL_DATASETS),  # MoCo v2 on every dataset SimCLR has (issue 15, part 3)
)

# Native image shape of each dataset the presets name (used when the preset does not set data.image_size).
NATIVE_SHAPES: dict[str, tuple[int, int, int]] = {
    "cifar10": (3, 32, 32),
    "cifar100": (3, 32, 32),
    "stl10": (3, 96, 96),
    "stl10-unlabeled": (3, 96, 96),
    "tiny-imagenet": (3, 64, 64),
    "celeba": (3, 64, 64),
    "imagenet": (3, 224, 224),
}

# Official training-set sizes, for the projection when the real files are absent: (images, whether the reader carves
# data.val_fraction out of them, source). The counts are the ones the official releases state.
OFFICIAL_TRAIN_SIZES: dict[str, tuple[int, bool, str]] = {
    "cifar10": (50_000, True, "CIFAR-10: 50,000 training images (Krizhevsky 2009; cs.toronto.edu/~kriz/cifar.html)"),
    "cifar100": (50_000, True, "CIFAR-100: 50,000 training images (Krizhevsky 2009; cs.toronto.edu/~kriz/cifar.html)"),
    "stl10": (5_000, True, "STL-10: 5,000 labelled train images (Coates, Lee, Ng 2011; stl10_binary/train_X.bin)"),
    "stl10-unlabeled": (105_000, True, "STL-10: 100,000 unlabeled + 5,000 train images (Coates, Lee, Ng 2011)"),
    "tiny-imagenet": (100_000, True, "Tiny-ImageNet-200: 200 classes x 500 training images (tiny-imagenet-200.zip)"),
    "celeba": (
        162_770,
        False,
        "CelebA: 162,770 images in the official train partition (list_eval_partition.txt; Liu et al. 2015), "
        "before SimVAE's hair-colour filter: the projection uses the unfiltered size",
    ),
    "imagenet": (1_281_167, True, "ImageNet ILSVRC-2012: 1,281,167 training images (Russakovsky et al. 2015)"),
}

# --tiny: the image side of every preset whose network does not depend on it (see tiny_image_size).
TINY_SIDE = 16
# Backbones whose layers are chosen from the image side: kept at the preset's own size in --tiny mode.
SIZE_BOUND_BACKBONES: dict[str, str] = {
    "simvae-resnet18": "its stem kernel (3 up to 32 px, else 4) and flatten width (128 x 4 x 4 at 32 px, 128 x 8 x 8 "
    "at 64 px) follow the side, and its decoder makes only 32 or 64 px images",
}

QUICK_OVERRIDES = (
    "train.precision=fp32",
    "train.compile=false",
    "train.progress=false",
    "train.monitor_every=0",
    "train.tensorboard=false",
    "train.checkpoint_every=0",
    "data.download=false",  # the real set only when it is already on disk; never a download from a benchmark
)


def image_shape(config) -> tuple[int, int, int]:
    """(C, H, W) the preset trains on: ``data.image_size`` when set, else the dataset's native size."""
    channels, height, width = NATIVE_SHAPES[config.data.name]
    size = config.data.image_size
    return (channels, size, size) if size else (channels, height, width)


def tiny_image_size(config) -> int | None:
    """The ``data.image_size`` of a --tiny row: ``TINY_SIDE`` when the backbone's layers do not depend on the side
    (the same network, cheaper steps), None (the preset's own size) for ``SIZE_BOUND_BACKBONES`` or an image
    already no larger."""
    _channels, height, width = image_shape(config)
    if config.model.backbone in SIZE_BOUND_BACKBONES or max(height, width) <= TINY_SIDE:
        return None
    return TINY_SIDE


def official_train_images(data) -> int:
    """Training images the protocol would see, from the official size: less the validation carve, capped by
    ``data.train_subset`` (the reader's rules, probssl/data/registry.py ``_split``)."""
    n, carved, _source = OFFICIAL_TRAIN_SIZES[data.name]
    if carved:
        n -= min(max(round(data.val_fraction * n), 1), n - 1)
    return min(n, data.train_subset) if data.train_subset else n


def protocol_steps(train, n_images: int) -> int:
    """Optimiser steps of the full protocol: epochs x floor(n / batch) (the trainer drops the last partial batch),
    capped by ``train.max_steps``."""
    steps = train.epochs * (n_images // train.batch_size)
    return min(steps, train.max_steps) if train.max_steps else steps


def preset_data(config, n: int, *, synthetic: bool = False):
    """(splits, "real" | "synthetic", training images of the full protocol) for ``config``.

    The real set when ``load_splits`` finds it on disk (``data.download`` is false here) and ``synthetic`` is
    false: its first ``n`` train images (and up to 32 val / test) keep the step cheap; the protocol's count is the
    whole train split's. ``synthetic`` (--tiny) never reads the disk, so CI cannot depend on what is there."""
    import torch
    from harness.runners import synthetic_splits

    from probssl.data import DataError, DataSplits, load_splits

    def fake():
        return synthetic_splits(image_shape(config), n), "synthetic", official_train_images(config.data)

    if synthetic:
        return fake()
    try:
        real = load_splits(config)
    except DataError:  # not on disk: synthetic images of the same shape
        return fake()

    def head(split, m):
        return split.subset(torch.arange(min(m, len(split))))

    splits = DataSplits(train=head(real.train, n), val=head(real.val, 32), test=head(real.test, 32))
    return splits, "real", len(real.train)


class PeakMemory:
    """Peak memory of the work between :meth:`start` and :meth:`peak_mb`, in MB, and how it was measured.

    CUDA: ``torch.cuda.max_memory_allocated`` after a reset, less what was allocated at the start. CPU: the growth
    of the peak resident set over the resident set at the start; on Linux the peak is reset first (``5`` written to
    ``/proc/self/clear_refs``) and read from ``VmHWM``, and memory freed by earlier presets is handed back to the OS
    (``malloc_trim``) so that reusing it does not hide growth. Elsewhere ``ru_maxrss`` growth: a lower bound (0 when
    an earlier preset peaked higher)."""

    def __init__(self, device):
        self.device = device
        self.cuda = device.type == "cuda"
        self.linux = not self.cuda and _status_kb("VmHWM") is not None and _reset_peak_rss()
        if self.cuda:
            self.how = "CUDA max_memory_allocated"
        else:
            self.how = "CPU peak RSS growth (VmHWM)" if self.linux else "CPU ru_maxrss growth (a lower bound)"

    def start(self) -> None:
        import torch

        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
            return
        try:  # glibc keeps freed heap pages resident; give them back so the next preset's growth is visible
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass
        if self.linux:
            _reset_peak_rss()
            self.base = _status_kb("VmRSS") * 1024
        else:
            self.base = _maxrss_bytes()

    def peak_mb(self) -> float:
        import torch

        if self.cuda:
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            peak = _status_kb("VmHWM") * 1024 if self.linux else _maxrss_bytes()
        return max(peak - self.base, 0) / 2**20


def _status_kb(field: str) -> int | None:
    """``field`` (VmRSS, VmHWM) of /proc/self/status in kB; None where there is no /proc."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux >= 4.0); False when not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _maxrss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # bytes on macOS, kB on Linux


def resolve_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def run_preset(
    name: str, *, batch: int, steps: int, device: str, build_only: bool, memory: PeakMemory, tiny: bool = False
) -> dict:
    """Build ``name`` on data of its shape and run ``steps`` steps (none when ``build_only``).

    Returns the row: preset, method, backbone, shape, params, data, tiny, losses, step_s / img_s (mean over the
    steps after the warm-up, or None), peak_mb, train_images, protocol_steps, projected_s (None when not stepped or
    ``tiny``: a step at a shrunk side does not project to the protocol's), status."""
    from probssl.config import load_config
    from probssl.train import Trainer

    preset = load_config(name)
    protocol = preset.train  # the preset's own batch, epochs, max_steps
    overrides = [*QUICK_OVERRIDES, f"train.batch_size={batch}", f"train.device={device}"]
    side = tiny_image_size(preset) if tiny else None
    config = load_config(name, overrides=overrides + ([f"data.image_size={side}"] if side else []))
    row = {"preset": name, "method": config.method.name, "backbone": config.model.backbone, "tiny": tiny}
    splits, row["data"], row["train_images"] = preset_data(config, max(2 * batch, 8), synthetic=tiny)
    row["shape"] = list(splits.image_shape)
    row["protocol_steps"] = protocol_steps(protocol, row["train_images"])
    memory.start()
    with tempfile.TemporaryDirectory(prefix="probssl-paper-") as tmp:
        trainer = Trainer(config, Path(tmp) / "run", splits=splits, echo=lambda _m: None)
        row["params"] = sum(p.numel() for p in trainer.method.parameters())
        times, row["losses"] = run_steps(trainer, len(splits.train.images), batch, 0 if build_only else steps)
        row["peak_mb"] = memory.peak_mb()
        del trainer
    timed = times[1:]  # the first step is a warm-up (allocator, kernel selection, lazy initialisation)
    row["step_s"] = sum(timed) / len(timed) if timed else None
    row["img_s"] = batch / row["step_s"] if timed else None
    # linear scaling of the step time from the measured batch to the preset's
    scaled = row["step_s"] * protocol.batch_size / batch if timed and not tiny else None
    row["projected_s"] = scaled * row["protocol_steps"] if scaled is not None else None
    row["status"] = "built" if build_only else f"ok ({steps} steps{', tiny' if tiny else ''})"
    return row


def run_steps(trainer, n_images: int, batch: int, steps: int) -> tuple[list[float], list[float]]:
    """(seconds, loss) of ``steps`` optimiser steps on consecutive batches of the ``n_images`` training images;
    raises on a non-finite loss, which is what a broken preset most often looks like."""
    import torch

    times, losses = [], []
    trainer.model.train()
    for step in range(steps):
        index = torch.arange(step * batch, (step + 1) * batch) % n_images
        tic = time.perf_counter()
        stats = trainer.train_step(index)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)
        times.append(time.perf_counter() - tic)
        trainer.step += 1
        if stats is None or not math.isfinite(stats["loss"]):
            raise RuntimeError(f"non-finite loss at step {step}: {None if stats is None else stats['loss']}")
        losses.append(stats["loss"])
    return times, losses


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h" if seconds < 100 * 3600 else f"{seconds / 86400:.0f} d"


def format_table(rows: list[dict], memory_how: str) -> str:
    """The rows as an aligned text table; ``memory_how`` names the memory measure in its header."""
    header = ("preset", "method", "backbone", "image", "params", "data", "step s", "img/s")
    header += (f"peak MB ({memory_how})", "train imgs", "steps", "projected", "status")
    lines = [header]
    for r in rows:
        shape = "x".join(map(str, r.get("shape", []))) or "-"
        params = f"{r['params'] / 1e6:.2f}M" if "params" in r else "-"
        step = f"{r['step_s']:.3f}" if r.get("step_s") else "-"
        rate = f"{r['img_s']:.1f}" if r.get("img_s") else "-"
        peak = f"{r['peak_mb']:.0f}" if r.get("peak_mb") is not None else "-"
        images = f"{r['train_images']:,}" if "train_images" in r else "-"
        total = f"{r['protocol_steps']:,}" if "protocol_steps" in r else "-"
        lines.append(
            (r["preset"], r.get("method", "-"), r.get("backbone", "-"), shape, params, r.get("data", "-"), step, rate)
            + (peak, images, total, "- (tiny)" if r.get("tiny") else _duration(r.get("projected_s")), r["status"])
        )
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(line, widths)).rstrip() for line in lines)


def table_notes(batch: int, device, tiny: bool = False) -> str:
    """What the table's columns mean (printed under it)."""
    if tiny:
        return (
            f"device {device}, {_threads()} torch thread(s); TINY: synthetic data, --batch {batch}, image side "
            f"{TINY_SIDE} px except where the network depends on it ({', '.join(SIZE_BOUND_BACKBONES)}: the "
            "preset's own size). "
            "Step times, img/s and memory are those of this smoke test, not of the protocol: no projection.\n"
            "steps: the full protocol's, epochs x floor(train imgs / preset batch), from the official training-set "
            "sizes."
        )
    return (
        f"device {device}; step s and img/s at --batch {batch}, mean over the steps after one warm-up step.\n"
        f"projected = step s x (preset batch / {batch}) x steps, steps = epochs x floor(train imgs / preset batch): a "
        "linear scaling of the step time with the batch, on this device.\n"
        "train imgs: the real train split when data = real, else the official training-set size less the "
        "data.val_fraction carve (CelebA: the unfiltered 162,770 of the official train partition)."
    )


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="build every preset and run a few tiny steps")
    parser.add_argument("--only", nargs="+", metavar="PRESET", help="only these presets (default: all)")
    parser.add_argument("--build-only", nargs="+", default=[], metavar="PRESET", help="build these, run no step")
    parser.add_argument("--tiny", action="store_true", help=f"CI smoke test: synthetic data, batch 2, {TINY_SIDE} px")
    parser.add_argument("--batch", type=int, help="images per step (default 4; 2 with --tiny)")
    parser.add_argument("--steps", type=int, default=2, help="steps per preset, the first a warm-up (default 2)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    if not args.quick:
        parser.error("only --quick is implemented; a full protocol is `probssl train --preset NAME`")
    if args.batch is None:
        args.batch = 2 if args.tiny else 4
    unknown = sorted((set(args.only or []) | set(args.build_only)) - set(PAPER_PRESETS))
    if unknown:
        parser.error(f"unknown paper preset(s) {', '.join(unknown)}; choose from {', '.join(PAPER_PRESETS)}")
    if args.batch < 2 or args.steps < 2:
        parser.error("--batch must be >= 2 (contrastive losses need negatives) and --steps >= 2 (a warm-up + 1 timed)")
    return args


def limit_threads_for_tiny() -> None:
    """One intra-op thread for --tiny unless ``OMP_NUM_THREADS`` says otherwise: its tensors are too small to gain
    from threads, and on a busy CPU their spinning threads slow it down several-fold (measured in
    docs/paper-protocols.md)."""
    import torch

    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.tiny:
        limit_threads_for_tiny()
    names = list(dict.fromkeys([*(args.only or PAPER_PRESETS), *args.build_only]))
    try:
        memory = PeakMemory(resolve_device(args.device))
    except RuntimeError as err:  # torch.device("gpu") and the like: one line, no traceback
        print(f"--device {args.device}: {err}; use auto, cpu, cuda or cuda:N", file=sys.stderr)
        return 2
    rows, failed = [], 0
    for name in names:
        try:
            build_only = name in args.build_only
            row = run_preset(
                name,
                batch=args.batch,
                steps=args.steps,
                device=args.device,
                build_only=build_only,
                memory=memory,
                tiny=args.tiny,
            )
        except Exception as err:  # one failing preset must not hide the others: report it, exit 1 at the end
            failed += 1
            row = {"preset": name, "status": f"FAILED: {type(err).__name__}: {str(err).splitlines()[0][:300]}"}
        rows.append(row)
        print(f"{name}: {row['status']}", file=sys.stderr, flush=True)
    print(format_table(rows, memory.how))
    print(table_notes(args.batch, memory.device, args.tiny))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
    if failed:
        print(f"{failed} of {len(rows)} preset(s) failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
