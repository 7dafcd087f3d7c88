"""Training throughput of probssl on CPU, side by side with the bare backbone and a peer pipeline.

    python benchmarks/throughput.py [--quick] [--out benchmarks/results] [--peer lightly|pil|none]

Every row is measured in fresh subprocesses (so its peak RSS, ``ru_maxrss``, is its own), fp32,
``torch.set_num_threads(2)``, batch 256 images x 2 views. A row's figure is the median time of
single training steps after warm-up, reported as *images/s = 256 / median step time* (each image
is seen as 2 views, so the backbone processes 512 images a step).

Rows, for each backbone (``convnet`` on 1x28x28 grey, ``resnet18-cifar`` on 3x32x32 colour):

* probssl methods -- ``probssl.train.Trainer(config, run_dir, splits=synthetic)`` built from the
  presets ``simclr-mnist``, ``vsimclr-mnist``, ``scl-gaussian-mnist``, ``scl-bernoulli-mnist``,
  ``simvae-mnist`` (``train.batch_size=256``; ``model.backbone`` set for every row, since the SimVAE
  preset uses an MLP; the ResNet rows use the CIFAR SimCLR crop/flip ``augment.crop_scale=[0.08, 1]``,
  ``augment.hflip_p=0.5``), timing ``trainer.train_step(index)``: index -> batched augmentation
  of both views -> forward -> loss -> backward -> optimiser, the real step of ``probssl train``.
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

Targets (per backbone, in the JSON and Markdown): SimCLR >= 0.85x the bare backbone and VSimCLR's
step <= 1.05x SimCLR's (same-process ratios); probssl's SimCLR >= 2x the peer (round-paired ratios).

``--quick`` measures only the convnet rows with few steps, as a smoke check; it writes to a
temporary directory unless ``--out`` is given. Before measuring, the script waits (``--max-load``,
``--load-wait``) until the 1-minute load average is below 1.0, and records the load averages.
``--set KEY=VALUE`` adds a config override to every probssl row (e.g. ``model.channels_last=true``).
``--profile ROW`` (e.g. ``convnet/simclr``, ``convnet/peer-lightly``) runs one row under
``torch.profiler`` and prints the phase times and the by-op table instead.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import peer_setup  # noqa: E402  (stdlib only at import time)

BATCH = 256
VIEWS = 2
THREADS = 2
PEER_WORKERS = 2
RESULT_TAG = "THROUGHPUT_RESULT "

BACKBONES = {
    # name: (image shape, probssl overrides shared by the rows, (warm-up, timed steps, rounds), the same for --quick)
    "convnet": ((1, 28, 28), [], (2, 10, 4), (2, 5, 1)),
    "resnet18-cifar": ((3, 32, 32), ["augment.crop_scale=[0.08, 1.0]", "augment.hflip_p=0.5"], (1, 3, 1), (1, 1, 1)),
}
# Steps (warm-up, timed) of each row in the interleaved same-process measurement; (full, --quick).
PAIRED_STEPS = {"convnet": ((3, 20), (2, 5)), "resnet18-cifar": ((1, 3), (1, 1))}
METHODS = [  # (row name, preset, extra overrides)
    ("SimCLR", "simclr-mnist", []),
    ("VSimCLR", "vsimclr-mnist", []),
    ("SCL (Gaussian)", "scl-gaussian-mnist", []),
    ("SCL (Bernoulli)", "scl-bernoulli-mnist", []),
    ("SimVAE", "simvae-mnist", []),
]
COMMON_OVERRIDES = [
    f"train.batch_size={BATCH}",
    f"train.num_threads={THREADS}",
    "train.device=cpu",
    "train.precision=fp32",
    "train.progress=false",
    "train.tensorboard=false",
]


# ============================================================================ the rows


def row_specs(
    backbones: list[str], peer: str, quick: bool, peer_python: str | None, extra_overrides: list[str] | None = None
) -> list[dict]:
    specs = []
    for bb in backbones:
        shape, bb_overrides, steps, quick_steps = BACKBONES[bb]
        warmup, timed, rounds = quick_steps if quick else steps
        base = {
            "backbone": bb,
            "shape": list(shape),
            "batch": BATCH,
            "warmup": warmup,
            "timed": timed,
            "rounds": rounds,
        }
        specs.append({**base, "key": f"{bb}/bare", "kind": "bare", "label": "bare backbone (fwd+bwd+AdamW, pre-made)"})
        for name, preset, extra in METHODS:
            overrides = COMMON_OVERRIDES + [f"model.backbone={bb}"] + bb_overrides + extra + list(extra_overrides or [])
            specs.append(
                {
                    **base,
                    "key": f"{bb}/{preset.removesuffix('-mnist')}",
                    "kind": "probssl",
                    "label": f"probssl {name}",
                    "method": name,
                    "preset": preset,
                    "overrides": overrides,
                }
            )
        simclr = next(s for s in specs if s["key"] == f"{bb}/simclr")
        # The limit runs in the memory format probssl's Trainer would pick (auto: NHWC on CPU).
        bare = next(s for s in specs if s["key"] == f"{bb}/bare")
        bare["channels_last"] = probssl_config(simclr["preset"], simclr["overrides"]).model.channels_last
        if peer != "none":
            spec = {
                **base,
                "key": f"{bb}/peer-{peer}",
                "kind": f"peer-{peer}",
                "workers": PEER_WORKERS,
                "augment": probssl_augment_params(simclr["preset"], simclr["overrides"], shape),
                "temperature": probssl_config(simclr["preset"], simclr["overrides"]).method.temperature,
            }
            if peer == "lightly":
                spec["label"] = f"peer: lightly SimCLR ({PEER_WORKERS}-worker DataLoader)"
                spec["python"] = peer_python
            else:
                spec["label"] = f"peer: per-image PIL SimCLR ({PEER_WORKERS}-worker DataLoader)"
            specs.append(spec)
    return specs


PAIRED_ROWS = ("bare", "simclr", "vsimclr")


def paired_specs(specs: list[dict], quick: bool) -> list[dict]:
    """Per backbone, the bare backbone, SimCLR and VSimCLR measured in one process, steps interleaved."""
    out = []
    for bb in dict.fromkeys(s["backbone"] for s in specs):
        members = [next(s for s in specs if s["key"] == f"{bb}/{name}") for name in PAIRED_ROWS]
        warmup, timed = PAIRED_STEPS[bb][1 if quick else 0]
        out.append(
            {
                "key": f"{bb}/paired",
                "kind": "paired",
                "backbone": bb,
                "batch": BATCH,
                "warmup": warmup,
                "timed": timed,
                "rounds": 1,
                "members": [{**m, "warmup": warmup, "timed": timed} for m in members],
                "label": "same-process A/B: " + ", ".join(PAIRED_ROWS),
            }
        )
    return out


def probssl_config(preset: str, overrides: list[str]):
    from probssl.config import load_config

    return load_config(preset, overrides=overrides)


def probssl_augment_params(preset: str, overrides: list[str], shape) -> dict:
    """The augmentation probssl's Trainer would use for this row, as plain values for the peer."""
    import dataclasses

    from probssl.train.trainer import build_augmenter

    params = build_augmenter(probssl_config(preset, overrides), tuple(shape)).params
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(params).items()}


# ============================================================================ runners (in the worker)


class Phases:
    """Accumulates wall time per named phase of one step."""

    def __init__(self):
        self.current: dict[str, float] = {}

    def wrap(self, name, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.current[name] = self.current.get(name, 0.0) + time.perf_counter() - t0

        return timed

    def take(self) -> dict[str, float]:
        out, self.current = self.current, {}
        return out


def synthetic_splits(shape, n: int, seed: int = 0):
    import torch

    from probssl.data import DataSplits, ImageDataset

    g = torch.Generator().manual_seed(seed)
    classes = tuple(str(i) for i in range(10))

    def split(m):
        return ImageDataset(
            images=torch.randint(0, 256, (m, *shape), dtype=torch.uint8, generator=g),
            labels=torch.randint(0, 10, (m,), generator=g),
            classes=classes,
            name="synthetic",
        )

    return DataSplits(train=split(n), val=split(32), test=split(32))


class ProbsslRunner:
    """``Trainer.train_step`` on synthetic uint8 images, with the augment / forward+loss / optimiser
    phases timed by wrapping the trainer's own callables (backward = the rest of the step)."""

    def __init__(self, spec: dict):
        import torch

        from probssl.train import Trainer

        config = probssl_config(spec["preset"], spec["overrides"])
        self.tmp = tempfile.TemporaryDirectory(prefix="probssl-bench-")
        n = 4 * spec["batch"]
        self.trainer = Trainer(
            config, Path(self.tmp.name) / "run", splits=synthetic_splits(spec["shape"], n), echo=lambda _m: None
        )
        self.trainer.model.train()
        self.phases = Phases()
        t = self.trainer
        t.augmenter = self.phases.wrap("augment", t.augmenter)
        t.model = self.phases.wrap("forward+loss", t.model)
        t.optimizer.step = self.phases.wrap("optimizer", t.optimizer.step)
        self.order = torch.Generator().manual_seed(1)
        self.n, self.batch = n, spec["batch"]
        self.params = sum(p.numel() for p in t.method.parameters())

    def step(self) -> dict[str, float]:
        import torch

        index = torch.randperm(self.n, generator=self.order)[: self.batch]
        t0 = time.perf_counter()
        stats = self.trainer.train_step(index)
        total = time.perf_counter() - t0
        self.trainer.step += 1
        if stats is None or not math.isfinite(stats["loss"]):
            raise RuntimeError(f"non-finite loss in the benchmark step: {stats}")
        phases = self.phases.take()
        phases["backward+rest"] = total - sum(phases.values())
        phases["total"] = total
        return phases


class BareRunner:
    """The backbone alone: forward on 2 x batch pre-made images, ``features.sum()``, backward, fused AdamW."""

    def __init__(self, spec: dict):
        import torch

        from probssl.models import create_backbone
        from probssl.train import use_channels_last

        torch.set_flush_denormal(True)  # as the Trainer does on CPU
        torch.manual_seed(0)
        c, h, w = spec["shape"]
        self.model = create_backbone(spec["backbone"], in_channels=c, image_size=h).train()
        self.x = torch.rand(VIEWS * spec["batch"], c, h, w)
        self.channels_last = use_channels_last(spec.get("channels_last"), self.model, torch.device("cpu"), "fp32")
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
            self.x = self.x.contiguous(memory_format=torch.channels_last)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-3, weight_decay=1e-4, fused=True)
        self.params = sum(p.numel() for p in self.model.parameters())

    def step(self) -> dict[str, float]:
        t0 = time.perf_counter()
        loss = self.model(self.x).sum()
        t1 = time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        self.opt.step()
        loss.item()
        t3 = time.perf_counter()
        return {"forward+loss": t1 - t0, "backward+rest": t2 - t1, "optimizer": t3 - t2, "total": t3 - t0}


# ---------------------------------------------------------------------------- peers


class PILSimCLRViews:
    """Per-image SimCLR views with PIL + numpy, the recipe of ``AugmentParams``: RandomResizedCrop
    (torchvision's sampling, bilinear), flips, colour jitter w.p. jitter_p in random order
    (brightness, contrast, saturation, hue), random grayscale; -> float CHW tensor in [0, 1]."""

    def __init__(self, params: dict, size: tuple[int, int], views: int = VIEWS):
        self.p, self.size, self.views = params, size, views

    def crop_box(self, rng, width: int, height: int):
        area = width * height
        lo, hi = self.p["crop_scale"]
        log_r = (math.log(self.p["crop_ratio"][0]), math.log(self.p["crop_ratio"][1]))
        for _ in range(10):
            target = area * rng.uniform(lo, hi)
            ratio = math.exp(rng.uniform(*log_r))
            w = round(math.sqrt(target * ratio))
            h = round(math.sqrt(target / ratio))
            if 0 < w <= width and 0 < h <= height:
                i = int(rng.integers(0, height - h + 1))
                j = int(rng.integers(0, width - w + 1))
                return j, i, j + w, i + h
        return 0, 0, width, height

    def view(self, img, rng):
        import numpy as np
        import torch
        from PIL import Image, ImageEnhance

        p = self.p
        colour = img.mode == "RGB"
        img = img.resize(self.size[::-1], Image.BILINEAR, box=self.crop_box(rng, *img.size))
        if rng.random() < p["hflip_p"]:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        if rng.random() < p["vflip_p"]:
            img = img.transpose(Image.FLIP_TOP_BOTTOM)
        if rng.random() < p["jitter_p"]:
            for op in rng.permutation(4):
                if op == 0 and p["brightness"] > 0:
                    b = p["brightness"]
                    img = ImageEnhance.Brightness(img).enhance(rng.uniform(max(0.0, 1 - b), 1 + b))
                elif op == 1 and p["contrast"] > 0:
                    c = p["contrast"]
                    img = ImageEnhance.Contrast(img).enhance(rng.uniform(max(0.0, 1 - c), 1 + c))
                elif op == 2 and colour and p["saturation"] > 0:
                    s = p["saturation"]
                    img = ImageEnhance.Color(img).enhance(rng.uniform(max(0.0, 1 - s), 1 + s))
                elif op == 3 and colour and p["hue"] > 0:
                    hsv = np.array(img.convert("HSV"))
                    shift = int(round(rng.uniform(-p["hue"], p["hue"]) * 255))
                    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + shift) % 256
                    img = Image.fromarray(hsv, "HSV").convert("RGB")
        if colour and rng.random() < p["grayscale_p"]:
            img = img.convert("L").convert("RGB")
        arr = np.asarray(img, dtype=np.float32) / 255.0
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(arr))

    def __call__(self, img, rng):
        return [self.view(img, rng) for _ in range(self.views)]


class PeerDataset:
    """uint8 HWC numpy images -> PIL image -> ``transform`` -> list of views (a map-style Dataset)."""

    def __init__(self, images, transform, seed: int = 0, pil_rng: bool = False):
        self.images, self.transform, self.seed, self.pil_rng = images, transform, seed, pil_rng

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        import numpy as np
        from PIL import Image

        arr = self.images[i]
        img = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr, "L" if arr.shape[-1] == 1 else "RGB")
        if self.pil_rng:
            return self.transform(img, np.random.default_rng((self.seed, i)))
        return self.transform(img)


class PeerRunner:
    """A DataLoader of per-image augmented views + the same backbone + head + NT-Xent + fused AdamW.
    A step = waiting for the next batch + the training step, as a user's loop sees it."""

    def __init__(self, spec: dict):
        import numpy as np
        import torch

        kind = spec["kind"]
        c, h, w = spec["shape"]
        p = spec["augment"]
        if kind == "peer-lightly":
            peer_setup.define_torchvision_op_stubs()
            _import_probssl_models_only()
            import lightly
            from lightly.loss import NTXentLoss
            from lightly.models.modules import SimCLRProjectionHead
            from lightly.transforms import SimCLRTransform

            self.versions = {"lightly": lightly.__version__, "torchvision": __import__("torchvision").__version__}
            b, s = p["brightness"], p["saturation"]
            # lightly scales (cj_bright, cj_contrast, cj_sat, cj_hue) by cj_strength: strength 1 and the
            # recipe's own values reproduce probssl's jitter exactly.
            transform = SimCLRTransform(
                input_size=h,
                cj_prob=p["jitter_p"],
                cj_strength=1.0,
                cj_bright=b,
                cj_contrast=p["contrast"],
                cj_sat=s,
                cj_hue=p["hue"],
                min_scale=p["crop_scale"][0],
                random_gray_scale=p["grayscale_p"],
                gaussian_blur=p["blur_p"],
                vf_prob=p["vflip_p"],
                hf_prob=p["hflip_p"],
                rr_prob=0.0,
                normalize=None,
            )
            dataset_rng = False
            self.loss_fn = NTXentLoss(temperature=spec["temperature"])
            head_cls = lambda fd: SimCLRProjectionHead(fd, 512, 128)  # noqa: E731
            self.loss = lambda z: self.loss_fn(z[: self.batch], z[self.batch :])
        else:
            from probssl.losses import info_nce
            from probssl.models import ProjectionHead

            self.versions = {"PIL": __import__("PIL").__version__}
            transform = PILSimCLRViews(p, (h, w))
            dataset_rng = True
            head_cls = lambda fd: ProjectionHead(fd, 512, 128)  # noqa: E731
            temperature = spec["temperature"]
            self.loss = lambda z: info_nce(
                torch.nn.functional.normalize(z, dim=-1).reshape(VIEWS, self.batch, -1), temperature, gather=False
            )
        from probssl.models import create_backbone

        torch.set_num_threads(THREADS)
        torch.set_flush_denormal(True)
        torch.manual_seed(0)
        self.batch = spec["batch"]
        backbone = create_backbone(spec["backbone"], in_channels=c, image_size=h)
        self.model = torch.nn.Sequential(backbone, head_cls(backbone.feature_dim)).train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-3, weight_decay=1e-4, fused=True)
        self.params = sum(q.numel() for q in self.model.parameters())
        n = self.batch * (spec["warmup"] + spec["timed"] + 2 * spec["workers"] + 1)  # one epoch covers the run
        images = np.random.default_rng(0).integers(0, 256, (n, h, w, c), dtype=np.uint8)
        self.loader = torch.utils.data.DataLoader(
            PeerDataset(images, transform, pil_rng=dataset_rng),
            batch_size=self.batch,
            shuffle=True,
            num_workers=spec["workers"],
            drop_last=True,
            persistent_workers=spec["workers"] > 0,
        )
        self.it = iter(self.loader)

    def step(self) -> dict[str, float]:
        import torch

        t0 = time.perf_counter()
        views = next(self.it)
        t1 = time.perf_counter()
        z = self.model(torch.cat(list(views)))
        loss = self.loss(z)
        t2 = time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        t3 = time.perf_counter()
        self.opt.step()
        loss.item()
        t4 = time.perf_counter()
        return {
            "data wait": t1 - t0,
            "forward+loss": t2 - t1,
            "backward+rest": t3 - t2,
            "optimizer": t4 - t3,
            "total": t4 - t0,
        }


def _import_probssl_models_only() -> None:
    """Make ``probssl.models`` / ``probssl.losses`` importable in the peer venv (which has torch but
    not probssl's other dependencies) without running ``probssl/__init__``."""
    import types

    if "probssl" in sys.modules:
        return
    pkg = types.ModuleType("probssl")
    pkg.__path__ = [str(ROOT / "probssl")]
    sys.modules["probssl"] = pkg


def make_runner(spec: dict):
    kind = spec["kind"]
    if kind == "probssl":
        return ProbsslRunner(spec)
    if kind == "bare":
        return BareRunner(spec)
    if kind.startswith("peer-"):
        return PeerRunner(spec)
    raise ValueError(f"unknown row kind {kind!r}")


def machine_cpu() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine so far, from /proc/stat (0, 0 if unreadable)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / tick, steal / tick


def process_cpu(pids: list[int]) -> float:
    """utime + stime in seconds of the given live processes (DataLoader workers), from /proc."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, ValueError, IndexError):
            pass
    return total


def worker_pids(runner) -> list[int]:
    it = getattr(runner, "it", None)
    return [w.pid for w in getattr(it, "_workers", [])] if it is not None else []


def paired_worker(spec: dict) -> dict:
    """Several rows in one process, their steps interleaved (A B C, B C A, C A B, ...): each step of a
    row has a step of every other row right next to it, so slow phases of the shared machine and
    per-process effects (memory layout, which core a thread lands on) cancel out of the ratios."""
    import torch

    sys.path.insert(0, str(ROOT))
    torch.set_num_threads(THREADS)
    runners = [make_runner(m) for m in spec["members"]]
    torch.set_num_threads(THREADS)
    k = len(runners)
    for i in range(spec["warmup"]):
        for j in range(k):
            runners[(i + j) % k].step()
    times = [[] for _ in runners]
    m0, r0, w0 = machine_cpu(), resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for i in range(spec["timed"]):
        for j in range(k):
            times[(i + j) % k].append(runners[(i + j) % k].step()["total"])
    wall = time.perf_counter() - w0
    m1, r1 = machine_cpu(), resource.getrusage(resource.RUSAGE_SELF)
    cpu_self = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    cores = len(os.sched_getaffinity(0))
    return {
        "keys": [m["key"] for m in spec["members"]],
        "step_s": times,
        "step_s_median": [statistics.median(t) for t in times],
        "cpu_utilisation": cpu_self / wall,
        "foreign_cpu_fraction": max(0.0, (m1[0] - m0[0]) - cpu_self) / (cores * wall),
        "steal_fraction": (m1[1] - m0[1]) / (cores * wall),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "images_per_s": [spec["batch"] / statistics.median(t) for t in times],
        "step_s_median_all": statistics.median(t for ts in times for t in ts),
    }


def worker(spec: dict) -> dict:
    """Measure one row in this process: warm-up, then ``timed`` single steps."""
    import torch

    if spec.get("profile"):
        return profile_worker(spec)
    if spec["kind"] == "paired":
        return paired_worker(spec)

    torch.set_num_threads(THREADS)
    if spec["kind"] != "peer-lightly":
        sys.path.insert(0, str(ROOT))
    t_build = time.perf_counter()
    runner = make_runner(spec)
    torch.set_num_threads(THREADS)
    build_s = time.perf_counter() - t_build
    warmup = [runner.step()["total"] for _ in range(spec["warmup"])]
    steps = []
    pids = worker_pids(runner)
    m0, k0 = machine_cpu(), process_cpu(pids)
    r0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(spec["timed"]):
        steps.append(runner.step())
    wall = time.perf_counter() - w0
    r1, m1, k1 = resource.getrusage(resource.RUSAGE_SELF), machine_cpu(), process_cpu(pids)
    totals = [s["total"] for s in steps]
    median = statistics.median(totals)
    cpu_self = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    cpu_workers = k1 - k0
    cores = len(os.sched_getaffinity(0))
    # CPU time the rest of the machine used while this row was timed, as a fraction of all cores:
    # ~0 on a quiet machine; a row with a large value was measured on shared cores.
    foreign = max(0.0, (m1[0] - m0[0]) - cpu_self - cpu_workers) / (cores * wall)
    steal = (m1[1] - m0[1]) / (cores * wall)
    result = {
        "step_s_median": median,
        "step_s": totals,
        "warmup_step_s": warmup,
        "images_per_s": spec["batch"] / median,
        "phases_ms": {k: [1e3 * s[k] for s in steps] for k in steps[0] if k != "total"},
        "cpu_utilisation": cpu_self / wall,  # ~2.0 = both cores busy in this process
        "cpu_utilisation_workers": cpu_workers / wall,
        "foreign_cpu_fraction": foreign,
        "steal_fraction": steal,
        "build_s": build_s,
        "params": runner.params,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "versions": getattr(runner, "versions", {}),
    }
    if isinstance(runner, PeerRunner):
        del runner.it, runner.loader  # shut the persistent workers down so their rusage is collected
        import gc

        gc.collect()
        time.sleep(0.5)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["peak_rss_children_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return result


# ============================================================================ the driver


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def wait_for_quiet_cpu(max_load: float, max_wait: float) -> dict:
    """Sleep (30 s at a time, up to ``max_wait`` s) until the 1-minute load average is < ``max_load``."""
    start = time.time()
    load = os.getloadavg()
    while load[0] >= max_load and time.time() - start < max_wait:
        print(
            f"load average {load[0]:.2f} >= {max_load}: waiting 30 s ({time.time() - start:.0f}/{max_wait:.0f} s)",
            flush=True,
        )
        time.sleep(30)
        load = os.getloadavg()
    return {
        "load_avg": [round(x, 2) for x in load],
        "waited_s": round(time.time() - start, 1),
        "quiet": load[0] < max_load,
    }


def wait_for_idle_cores(max_busy: float = 0.1, max_wait: float = 60.0, window: float = 5.0) -> float:
    """Sample /proc/stat in ``window``-s slices until the machine's busy fraction is < ``max_busy``
    (at most ``max_wait`` s); returns the last busy fraction."""
    cores = len(os.sched_getaffinity(0))
    start, busy = time.time(), 1.0
    while time.time() - start < max_wait:
        b0 = sum(machine_cpu())
        time.sleep(window)
        busy = (sum(machine_cpu()) - b0) / (cores * window)
        if busy < max_busy:
            break
    return busy


def run_row(spec: dict, timeout: float) -> dict:
    python = spec.get("python") or sys.executable
    payload = {k: v for k, v in spec.items() if k != "python"}
    cmd = [python, str(Path(__file__).resolve()), "--worker", json.dumps(payload)]
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS), PYTHONWARNINGS="ignore")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(ROOT))
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - t0
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            result = json.loads(line[len(RESULT_TAG) :])
            result["process_wall_s"] = wall
            return result
    return {
        "error": f"exit {proc.returncode}: " + (proc.stderr.strip().splitlines() or ["no output"])[-1][-400:],
        "stderr_tail": proc.stderr[-3000:],
    }


def paired(rows: dict, a: str, b: str, fn) -> list[float]:
    """``fn(round of a, round of b)`` for every round in which both rows were measured."""
    ra, rb = rows.get(a), rows.get(b)
    if not ra or not rb:
        return []
    by_round = {r["round"]: r for r in rb.get("rounds", []) if "images_per_s" in r}
    return [fn(r, by_round[r["round"]]) for r in ra.get("rounds", []) if "images_per_s" in r and r["round"] in by_round]


def aggregate(spec: dict, rounds: list[dict]) -> dict:
    row = {k: spec[k] for k in ("key", "kind", "label", "backbone", "shape", "batch", "warmup", "timed")}
    for k in ("preset", "overrides", "workers"):
        if k in spec:
            row[k] = spec[k]
    row["rounds"] = rounds
    ok = [r for r in rounds if "images_per_s" in r]
    if not ok:
        row["error"] = rounds[-1].get("error", "no measurement") if rounds else "not run"
        return row
    steps = [t for r in ok for t in r["step_s"]]
    row["step_s_median"] = statistics.median(steps)
    row["images_per_s"] = spec["batch"] / row["step_s_median"]
    row["images_per_s_per_round"] = [round(r["images_per_s"], 2) for r in ok]
    row["phases_ms_median"] = {
        k: statistics.median(v for r in ok for v in r["phases_ms"][k]) for k in ok[0]["phases_ms"]
    }
    row["peak_rss_mb"] = max(r["peak_rss_mb"] for r in ok)
    row["peak_rss_children_mb"] = max(r["peak_rss_children_mb"] for r in ok)
    row["cpu_utilisation"] = statistics.median(r["cpu_utilisation"] for r in ok)
    row["foreign_cpu_fraction_max"] = max(r["foreign_cpu_fraction"] + r["steal_fraction"] for r in ok)
    row["contended"] = any(r["contended"] for r in ok)
    row["params"] = ok[0]["params"]
    row["versions"] = ok[0]["versions"]
    return row


def evaluate_targets(rows: list[dict], same_process: list[dict]) -> list[dict]:
    """The issue's targets per backbone. SimCLR vs bare and VSimCLR vs SimCLR come from the same-process
    interleaved measurement (median of the per-iteration ratios of adjacent steps); probssl vs the
    peer (another process, another venv) from the median over rounds of round-paired ratios."""
    by_key = {r["key"]: r for r in rows if "images_per_s" in r}
    targets = []
    for bb in BACKBONES:
        ab = next((p for p in same_process if p["backbone"] == bb and "step_s" in p), None)
        if ab:
            t = dict(zip(ab["keys"], ab["step_s"]))
            bare, simclr, vsimclr = (t.get(f"{bb}/{n}") for n in PAIRED_ROWS)
            for name, values, threshold, ok in (
                (
                    "SimCLR step >= 0.85x bare backbone",
                    [b / s for b, s in zip(bare, simclr)],
                    0.85,
                    lambda v: v >= 0.85,
                ),
                (
                    "VSimCLR costs <= 5% more than SimCLR",
                    [v / s - 1 for v, s in zip(vsimclr, simclr)],
                    0.05,
                    lambda v: v <= 0.05,
                ),
            ):
                v = statistics.median(values)
                targets.append(
                    {
                        "backbone": bb,
                        "target": name,
                        "value": round(v, 3),
                        "source": "same process",
                        "per_step": [round(x, 3) for x in values],
                        "threshold": threshold,
                        "met": ok(v),
                        "contended": ab["contended"],
                    }
                )
        peer = next((k for k in by_key if k.startswith(f"{bb}/peer-")), None)
        if peer and f"{bb}/simclr" in by_key:
            values = paired(by_key, f"{bb}/simclr", peer, lambda a, b: a["images_per_s"] / b["images_per_s"])
            v = statistics.median(values)
            targets.append(
                {
                    "backbone": bb,
                    "target": f"probssl SimCLR >= 2x the peer ({by_key[peer]['kind']})",
                    "value": round(v, 3),
                    "source": "rounds",
                    "per_round": [round(x, 3) for x in values],
                    "threshold": 2.0,
                    "met": v >= 2.0,
                    "contended": by_key[f"{bb}/simclr"]["contended"] or by_key[peer]["contended"],
                }
            )
    return targets


def markdown(report: dict) -> str:
    m = report["machine"]
    lb = m["load_before"]["load_avg"]
    lines = [
        "# probssl training throughput",
        "",
        f"`{report['command']}` -- {m['date']}, {m['cpu_model']}, {m['cores']} cores, torch {m['torch']}, "
        f"{m['threads']} threads, fp32, batch {BATCH} images x {VIEWS} views. Load average (1/5/15 min) "
        f"before: {lb[0]:.2f} / {lb[1]:.2f} / {lb[2]:.2f}, after: {' / '.join(f'{x:.2f}' for x in m['load_after'])}.",
        "",
        "images/s = batch images (each seen as 2 views) / median step time after warm-up, pooled over "
        "the rounds; x bare = median over rounds of the row's rate / the bare backbone's in the same round.",
        "",
        "| config | views | images/s | range over rounds | ms/step | x bare backbone | peak RSS MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows = {r["key"]: r for r in report["results"]}
    for r in report["results"]:
        name = f"{r['backbone']} · {r['label']}"
        if "images_per_s" not in r:
            lines.append(f"| {name} | {VIEWS} | error: {r.get('error', '')[:80]} | | | | |")
            continue
        ratios = paired(rows, r["key"], f"{r['backbone']}/bare", lambda a, b: a["images_per_s"] / b["images_per_s"])
        ratio = f"{statistics.median(ratios):.2f}" if ratios else "n/a"
        rss = f"{r['peak_rss_mb']:.0f}"
        if r["kind"].startswith("peer") and r.get("peak_rss_children_mb", 0) > 1:
            rss += f" (+ {r['workers']} workers, {r['peak_rss_children_mb']:.0f} each)"
        flag = " †" if r.get("contended") else ""
        per_round = r["images_per_s_per_round"]
        spread = f"{min(per_round):.1f}-{max(per_round):.1f}" if len(per_round) > 1 else "(1 round)"
        lines.append(
            f"| {name}{flag} | {VIEWS} | {r['images_per_s']:.1f} | {spread} | {1e3 * r['step_s_median']:.0f} | "
            f"{ratio} | {rss} |"
        )
    s = report["settings"]
    lines += [
        "",
        "Steps per row (warm-up + timed) x rounds: "
        + "; ".join(f"{bb} {v['warmup']} + {v['timed']} x {v['rounds']}" for bb, v in s["steps"].items())
        + ".",
    ]
    if any(r.get("contended") for r in report["results"]):
        lines += [
            "",
            f"† other processes used > {100 * s['max_foreign']:.0f}% of the cores while this row was "
            "timed (even after a re-measurement): its figure is polluted.",
        ]
    if report.get("same_process"):
        lines += [
            "",
            "Same process, steps interleaved (bare, SimCLR, VSimCLR, then rotated), which cancels "
            "the machine's drift and per-process effects out of the ratios:",
            "",
            "| backbone | timed steps each | bare img/s | SimCLR img/s | VSimCLR img/s |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for p in report["same_process"]:
            if "images_per_s" in p:
                lines.append(
                    f"| {p['backbone']}{' †' if p.get('contended') else ''} | {p['timed']} | "
                    + " | ".join(f"{x:.1f}" for x in p["images_per_s"])
                    + " |"
                )
    lines += ["", "| backbone | target | measured | from | verdict |", "| --- | --- | ---: | --- | --- |"]
    for t in report["targets"]:
        verdict = ("met" if t["met"] else "MISSED") + (" (contended)" if t["contended"] else "")
        source = (
            "median of per-step ratios, same process"
            if t["source"] == "same process"
            else "median of round-paired ratios (" + ", ".join(f"{x:.2f}" for x in t["per_round"]) + ")"
        )
        lines.append(f"| {t['backbone']} | {t['target']} | {t['value']:.3f} | {source} | {verdict} |")
    return "\n".join(lines) + "\n"


def profile_row(
    key: str, peer_python: str | None, steps: int, sort: str, limit: int, extra_overrides: list[str] | None = None
) -> None:
    """Run one row (in its own interpreter: the peer venv for the lightly peer) under torch.profiler."""
    peer = "lightly" if key.endswith("/peer-lightly") else "pil"
    specs = row_specs(list(BACKBONES), peer, False, peer_python, extra_overrides)
    spec = next((s for s in specs if s["key"] == key), None)
    if spec is None:
        sys.exit(
            f"unknown row {key!r}; rows: {', '.join(s['key'] for s in specs)}, "
            + ", ".join(f"{bb}/peer-lightly" for bb in BACKBONES)
        )
    python = spec.pop("python", None) or sys.executable
    spec["profile"] = {"steps": steps, "sort": sort, "rows": limit}
    subprocess.run([python, str(Path(__file__).resolve()), "--worker", json.dumps(spec)], cwd=str(ROOT), check=True)


def profile_worker(spec: dict) -> dict:
    import torch
    from torch.profiler import ProfilerActivity, profile

    if spec["kind"] != "peer-lightly":
        sys.path.insert(0, str(ROOT))
    torch.set_num_threads(THREADS)
    runner = make_runner(spec)
    torch.set_num_threads(THREADS)
    for _ in range(spec["warmup"]):
        runner.step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        phases = [runner.step() for _ in range(spec["profile"]["steps"])]
    print(f"{spec['key']}: median of {len(phases)} profiled steps (ms)")
    for name in phases[0]:
        print(f"  {name:14s} {1e3 * statistics.median(p[name] for p in phases):9.1f}")
    print(prof.key_averages().table(sort_by=spec["profile"]["sort"], row_limit=spec["profile"]["rows"]))
    return {}


def measure(spec: dict, args, t_start: float, rnd: int) -> dict:
    """One round of one row in a fresh subprocess; measured again (up to ``--retries`` times, while
    ``--retry-until`` allows) if other processes used more than ``--max-foreign`` of the cores."""
    load = [round(x, 2) for x in os.getloadavg()]
    print(
        f"[{time.perf_counter() - t_start:5.0f} s] round {rnd + 1} {spec['key']:28s} (load {load[0]:.2f}) ... ",
        end="",
        flush=True,
    )
    attempts = []
    while True:
        result = run_row(spec, args.timeout)
        attempts.append(result)
        contention = result.get("foreign_cpu_fraction", 0.0) + result.get("steal_fraction", 0.0)
        if (
            "images_per_s" not in result
            or contention <= args.max_foreign
            or len(attempts) > args.retries
            or time.perf_counter() - t_start > args.retry_until
        ):
            break
        busy = wait_for_idle_cores()
        print(
            f"contended ({100 * contention:.0f}% of the cores used by other processes), again "
            f"(machine now {100 * busy:.0f}% busy) ... ",
            end="",
            flush=True,
        )
    ok = [a for a in attempts if "images_per_s" in a]
    if ok:  # the least contended attempt
        result = min(ok, key=lambda a: a["foreign_cpu_fraction"] + a["steal_fraction"])
        result["contended"] = result["foreign_cpu_fraction"] + result["steal_fraction"] > args.max_foreign
        rate = (
            " / ".join(f"{x:.1f}" for x in result["images_per_s"])
            if isinstance(result["images_per_s"], list)
            else f"{result['images_per_s']:8.1f}"
        )
        print(
            f"{rate} img/s  (cpu {result['cpu_utilisation']:.2f}, others {result['foreign_cpu_fraction']:.2f}, "
            f"rss {result['peak_rss_mb']:.0f} MB)",
            flush=True,
        )
    else:
        print(f"ERROR {result['error']}", flush=True)
    result.update(
        round=rnd,
        load_avg_before=load,
        attempts=[
            {
                "images_per_s": a.get("images_per_s"),
                "foreign_cpu_fraction": a.get("foreign_cpu_fraction"),
                "steal_fraction": a.get("steal_fraction"),
                "error": a.get("error"),
            }
            for a in attempts
        ],
    )
    return result


def main(argv: list[str] | None = None) -> None:
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
    args = parser.parse_args(argv)

    if args.worker:
        result = worker(json.loads(args.worker))
        print(RESULT_TAG + json.dumps(result), flush=True)
        return
    peer_python = str(peer_setup.venv_python(args.peer_venv))
    if args.profile:
        profile_row(args.profile, peer_python, args.profile_steps, args.profile_sort, args.profile_rows, args.set)
        return

    peer = args.peer or ("lightly" if Path(peer_python).exists() else "pil")
    if peer == "lightly" and not Path(peer_python).exists():
        sys.exit(
            f"--peer lightly needs the peer venv {args.peer_venv}: run `python3 benchmarks/peer_setup.py` "
            "(or use --peer pil)"
        )
    backbones = args.backbones or (["convnet"] if args.quick else list(BACKBONES))
    out = (
        Path(args.out)
        if args.out
        else (Path(tempfile.mkdtemp(prefix="throughput-quick-")) if args.quick else HERE / "results")
    )
    load_wait = args.load_wait if args.load_wait is not None else (0 if args.quick else 600)

    import torch

    specs = row_specs(backbones, peer, args.quick, peer_python, args.set)
    load_before = wait_for_quiet_cpu(args.max_load, load_wait)
    if not load_before["quiet"]:
        print(f"warning: load average still {load_before['load_avg'][0]:.2f}; numbers may be polluted", flush=True)
    t_start = time.perf_counter()
    measured: dict[str, list[dict]] = {s["key"]: [] for s in specs}
    paired_results: list[dict] = []
    for bb in backbones:
        bb_specs = [s for s in specs if s["backbone"] == bb]
        for rnd in range(bb_specs[0]["rounds"]):
            # Alternate the order (A B C, C B A, ...) so a slow drift of the machine hits every row alike.
            for spec in bb_specs if rnd % 2 == 0 else bb_specs[::-1]:
                result = measure(spec, args, t_start, rnd)
                measured[spec["key"]].append(result)
        for spec in paired_specs(bb_specs, args.quick):
            ab = measure(spec, args, t_start, 0)
            ab.update(key=spec["key"], backbone=bb, warmup=spec["warmup"], timed=spec["timed"])
            paired_results.append(ab)
    rows = [aggregate(spec, measured[spec["key"]]) for spec in specs]

    report = {
        "command": "python benchmarks/throughput.py" + (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else ""),
        "machine": {
            "cpu_model": cpu_model(),
            "cores": os.cpu_count(),
            "cores_usable": len(os.sched_getaffinity(0)),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "threads": THREADS,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "load_before": load_before,
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "platform": platform.platform(),
        },
        "settings": {
            "extra_overrides": args.set,
            "batch": BATCH,
            "views": VIEWS,
            "precision": "fp32",
            "threads": THREADS,
            "peer": peer,
            "peer_workers": PEER_WORKERS,
            "quick": args.quick,
            "max_foreign": args.max_foreign,
            "steps": {
                bb: {k: next(s[k] for s in specs if s["backbone"] == bb) for k in ("warmup", "timed", "rounds")}
                for bb in backbones
            },
            "statistic": "median of single-step times after warm-up, pooled over rounds; "
            "images/s = batch / median; targets = median over rounds of round-paired ratios",
        },
        "total_s": round(time.perf_counter() - t_start, 1),
        "results": rows,
        "same_process": paired_results,
    }
    report["targets"] = evaluate_targets(rows, paired_results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "throughput.json").write_text(json.dumps(report, indent=1) + "\n")
    md = markdown(report)
    (out / "throughput.md").write_text(md)
    print()
    print(md)
    print(f"wrote {out / 'throughput.json'} and {out / 'throughput.md'} ({report['total_s']:.0f} s)")


if __name__ == "__main__":
    main()
