"""Runners: one object per row kind that builds that row's training step and runs it step by step.

:class:`Runner` holds what every row shares (autocast for the row's precision, ``torch.compile``,
FLOP counting, the warm-up / timed loop); its subclasses build the step:

* :class:`BareRunner` -- the backbone alone on pre-made tensors (the limit of any pipeline);
* :class:`ProbsslRunner` -- ``probssl.train.Trainer``'s own step on synthetic uint8 images;
* :class:`LightlyPeerRunner` / :class:`PILPeerRunner` -- per-image augmentation in a DataLoader,
  as users of lightly (or of a plain PIL pipeline) train.

Stdlib only at import time: the lightly peer runs this module in its own venv without probssl's
dependencies, so torch, numpy, PIL and probssl are imported inside the methods.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import resource
import sys
import tempfile
import time
from pathlib import Path

import peer_setup  # noqa: E402  (stdlib only at import time; benchmarks/ is on sys.path)
from harness.machine import machine_cpu, process_cpu

ROOT = Path(__file__).resolve().parents[2]
VIEWS = 2


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

    def wrap_module(self, name, module):
        """``module`` inside an ``nn.Module`` that times its calls: the Trainer calls ``.train()`` on
        what it trains (a plain wrapper function would not have it)."""
        import torch

        phases = self

        class Timed(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = module

            def forward(self, *args, **kwargs):
                return phases.wrap(name, self.inner)(*args, **kwargs)

        return Timed()


class TimedWindow:
    """CPU accounting of the timed steps: this process, its DataLoader workers and the whole machine
    (from /proc/stat), so the worker can tell how much of the cores other processes used meanwhile."""

    def start(self, pids: list[int]) -> None:
        self.pids = pids
        self.m0, self.k0 = machine_cpu(), process_cpu(pids)
        self.r0, self.w0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()

    def stop(self) -> None:
        self.wall = time.perf_counter() - self.w0
        self.r1, self.m1, self.k1 = resource.getrusage(resource.RUSAGE_SELF), machine_cpu(), process_cpu(self.pids)

    def summary(self, cores: int) -> dict:
        cpu_self = (self.r1.ru_utime + self.r1.ru_stime) - (self.r0.ru_utime + self.r0.ru_stime)
        cpu_workers = self.k1 - self.k0
        # CPU time the rest of the machine used while the row was timed, as a fraction of all cores:
        # ~0 on a quiet machine; a row with a large value was measured on shared cores.
        foreign = max(0.0, (self.m1[0] - self.m0[0]) - cpu_self - cpu_workers) / (cores * self.wall)
        return {
            "cpu_utilisation": cpu_self / self.wall,  # ~2.0 = both cores busy in this process
            "cpu_utilisation_workers": cpu_workers / self.wall,
            "foreign_cpu_fraction": foreign,
            "steal_fraction": (self.m1[1] - self.m0[1]) / (cores * self.wall),
        }


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


def probssl_config(preset: str, overrides: list[str]):
    from probssl.config import load_config

    return load_config(preset, overrides=overrides)


def check_finite(loss: float, where: str) -> None:
    if not math.isfinite(loss):
        raise RuntimeError(f"non-finite loss in the benchmark step ({where}): {loss}")


# ============================================================================ the base class


class Runner:
    """One row's training step. Subclasses set ``self.params`` and implement :meth:`step`, returning
    wall seconds per phase plus ``total``; they keep the eager module in ``self.eager_module`` when
    they compile, so FLOPs can be counted on it."""

    versions: dict = {}

    def __init__(self, spec: dict):
        self.spec = spec
        self.precision = spec.get("precision", "fp32")
        self.compiled = bool(spec.get("compile", False))
        self.params = 0

    def step(self) -> dict[str, float]:
        raise NotImplementedError

    def autocast(self):
        """The row's mixed precision around forward + loss, as probssl's Trainer does it."""
        import torch

        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type="cpu", dtype=dtype)

    def maybe_compile(self, module):
        import torch

        return torch.compile(module) if self.compiled else module

    @contextlib.contextmanager
    def eager(self):
        """Run the step without torch.compile (compiled kernels bypass the FLOP counter's dispatch)."""
        yield

    def count_flops(self) -> int:
        """FLOPs of one step's forward + backward, by ``FlopCounterMode`` (matmuls, convolutions and
        attention; element-wise ops, augmentation and the optimiser count 0). The step is run eagerly:
        compiling changes the kernels, not the arithmetic."""
        from torch.utils.flop_counter import FlopCounterMode

        with self.eager(), FlopCounterMode(display=False) as counter:
            self.step()
        return int(counter.get_total_flops())

    def worker_pids(self) -> list[int]:
        return []

    def run_steps(self, warmup: int, timed: int, window: TimedWindow) -> tuple[list[float], list[dict]]:
        """Warm-up steps (their totals), then the timed steps inside ``window``."""
        warm = [self.step()["total"] for _ in range(warmup)]
        window.start(self.worker_pids())
        steps = [self.step() for _ in range(timed)]
        window.stop()
        return warm, steps

    def close(self) -> None:
        """Release what keeps running between steps (DataLoader workers)."""


# ============================================================================ bare backbone


class BareRunner(Runner):
    """The backbone alone: forward on 2 x batch pre-made images, ``features.sum()``, backward, fused AdamW."""

    def __init__(self, spec: dict):
        super().__init__(spec)
        import torch

        from probssl.models import create_backbone
        from probssl.train import use_channels_last

        torch.set_flush_denormal(True)  # as the Trainer does on CPU
        torch.manual_seed(0)
        c, h, w = spec["shape"]
        self.eager_module = create_backbone(spec["backbone"], in_channels=c, image_size=h).train()
        self.x = torch.rand(VIEWS * spec["batch"], c, h, w)
        cpu = torch.device("cpu")
        self.channels_last = use_channels_last(spec.get("channels_last"), self.eager_module, cpu, self.precision)
        if self.channels_last:
            self.eager_module = self.eager_module.to(memory_format=torch.channels_last)
            self.x = self.x.contiguous(memory_format=torch.channels_last)
        self.model = self.maybe_compile(self.eager_module)
        self.opt = torch.optim.AdamW(self.eager_module.parameters(), lr=1e-3, weight_decay=1e-4, fused=True)
        self.params = sum(p.numel() for p in self.eager_module.parameters())

    @contextlib.contextmanager
    def eager(self):
        model, self.model = self.model, self.eager_module
        try:
            yield
        finally:
            self.model = model

    def step(self) -> dict[str, float]:
        t0 = time.perf_counter()
        with self.autocast():
            loss = self.model(self.x).float().sum()
        t1 = time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        self.opt.step()
        loss.item()
        t3 = time.perf_counter()
        return {"forward+loss": t1 - t0, "backward+rest": t2 - t1, "optimizer": t3 - t2, "total": t3 - t0}


# ============================================================================ probssl's Trainer


def trainer_accepts_callbacks() -> bool:
    """Whether this checkout's ``Trainer`` takes ``callbacks=[...]`` (added after this benchmark)."""
    from probssl.train import Trainer

    return "callbacks" in inspect.signature(Trainer).parameters


class StepTimer:
    """A Trainer callback that times the steps of ``trainer.fit()``: a step's time is the wall time
    between two ``on_step_end`` calls (the first from ``on_fit_start``), i.e. the real loop's step,
    logging and progress bar included. Opens ``window`` after ``warmup`` steps and closes it after
    ``warmup + timed``. Has every hook of ``probssl.train.callbacks.Callback`` (duck typing, so the
    benchmark also imports on checkouts that predate that module)."""

    def __init__(self, phases: Phases, warmup: int, timed: int):
        self.phases, self.warmup, self.timed = phases, warmup, timed
        self.window = TimedWindow()  # the worker hands its own in before fit()
        self.steps: list[dict] = []
        self.last = 0.0

    def on_fit_start(self, trainer) -> None:
        self.last = time.perf_counter()

    def on_step_end(self, trainer, stats) -> None:
        total = time.perf_counter() - self.last
        if stats is None:
            raise RuntimeError("the trainer skipped a non-finite step in the benchmark")
        check_finite(stats["loss"], "fit")
        phases = self.phases.take()
        phases["backward+rest"] = total - sum(phases.values())
        phases["total"] = total
        self.steps.append(phases)
        if len(self.steps) == self.warmup:
            self.window.start([])
        elif len(self.steps) == self.warmup + self.timed:
            self.window.stop()
        self.last = time.perf_counter()  # the window's /proc reads are not part of the next step

    def on_epoch_end(self, trainer) -> None:
        pass

    def on_fit_end(self, trainer) -> None:
        pass


class ProbsslRunner(Runner):
    """``Trainer.train_step`` on synthetic uint8 images, with the augment / forward+loss / optimiser
    phases timed by wrapping the trainer's own callables (backward = the rest of the step).

    Single rows are timed through ``trainer.fit()`` with a :class:`StepTimer` callback when the Trainer
    accepts callbacks (the step as ``probssl train`` runs it, loop included); otherwise, and always in
    the same-process A/B (which must interleave single steps of several rows), by calling
    ``train_step`` directly."""

    def __init__(self, spec: dict):
        super().__init__(spec)
        import torch

        from probssl.train import Trainer

        self.via_fit = trainer_accepts_callbacks() and not spec.get("single_steps", False)
        warmup, timed = spec["warmup"], spec["timed"]
        self.n, self.batch = 4 * spec["batch"], spec["batch"]
        overrides = list(spec["overrides"]) + [f"train.precision={self.precision}"]
        if self.via_fit:  # one run of warm-up + timed steps, no checkpoint inside the timed window
            epochs = math.ceil((warmup + timed) / 4) + 1
            overrides += [f"train.max_steps={warmup + timed}", f"train.epochs={epochs}", "train.checkpoint_every=0"]
        self.tmp = tempfile.TemporaryDirectory(prefix="probssl-bench-")
        self.phases = Phases()
        kwargs = {}
        if self.via_fit:
            self.timer = StepTimer(self.phases, warmup, timed)
            kwargs["callbacks"] = [self.timer]
        config = probssl_config(spec["preset"], overrides)
        splits = synthetic_splits(spec["shape"], self.n)
        self.trainer = t = Trainer(config, Path(self.tmp.name) / "run", splits=splits, echo=lambda _m: None, **kwargs)
        t.model.train()
        t.augmenter = self.phases.wrap("augment", t.augmenter)
        t.model = self.phases.wrap_module("forward+loss", self.maybe_compile(t.model))
        t.optimizer.step = self.phases.wrap("optimizer", t.optimizer.step)
        self.order = torch.Generator().manual_seed(1)
        self.params = sum(p.numel() for p in t.method.parameters())

    @contextlib.contextmanager
    def eager(self):
        model, self.trainer.model = self.trainer.model, self.trainer.method
        try:
            yield
        finally:
            self.trainer.model = model

    def step(self) -> dict[str, float]:
        import torch

        index = torch.randperm(self.n, generator=self.order)[: self.batch]
        t0 = time.perf_counter()
        stats = self.trainer.train_step(index)
        total = time.perf_counter() - t0
        self.trainer.step += 1
        if stats is None:
            raise RuntimeError("the trainer skipped a non-finite step in the benchmark")
        check_finite(stats["loss"], "train_step")
        phases = self.phases.take()
        phases["backward+rest"] = total - sum(phases.values())
        phases["total"] = total
        return phases

    def run_steps(self, warmup: int, timed: int, window: TimedWindow) -> tuple[list[float], list[dict]]:
        if not self.via_fit:
            return super().run_steps(warmup, timed, window)
        self.timer.window = window
        self.trainer.fit()
        self.trainer.model.train()  # fit() leaves the method in eval mode; the FLOP count step follows
        steps = self.timer.steps
        return [s["total"] for s in steps[:warmup]], steps[warmup:]


# ============================================================================ peers


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


class PeerRunner(Runner):
    """A DataLoader of per-image augmented views + the same backbone + head + NT-Xent + fused AdamW.
    A step = waiting for the next batch + the training step, as a user's loop sees it. Subclasses
    supply the transform, head and loss (:meth:`build`)."""

    dataset_rng = False  # whether the transform takes a per-item numpy Generator

    def __init__(self, spec: dict):
        super().__init__(spec)
        import numpy as np
        import torch

        c, h, w = spec["shape"]
        self.batch = spec["batch"]
        transform, head_cls, self.loss = self.build(spec)
        from probssl.models import create_backbone

        torch.set_num_threads(spec.get("threads", 2))
        torch.set_flush_denormal(True)
        torch.manual_seed(0)
        backbone = create_backbone(spec["backbone"], in_channels=c, image_size=h)
        self.model = torch.nn.Sequential(backbone, head_cls(backbone.feature_dim)).train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-3, weight_decay=1e-4, fused=True)
        self.params = sum(q.numel() for q in self.model.parameters())
        # One epoch covers the run: warm-up, timed, the FLOP-count step, and the workers' prefetch.
        n = self.batch * (spec["warmup"] + spec["timed"] + 2 * spec["workers"] + 2)
        images = np.random.default_rng(0).integers(0, 256, (n, h, w, c), dtype=np.uint8)
        self.loader = torch.utils.data.DataLoader(
            PeerDataset(images, transform, pil_rng=self.dataset_rng),
            batch_size=self.batch,
            shuffle=True,
            num_workers=spec["workers"],
            drop_last=True,
            persistent_workers=spec["workers"] > 0,
        )
        self.it = iter(self.loader)

    def build(self, spec: dict):
        """(per-image transform, head class taking feature_dim, loss of the 2B x D projections)."""
        raise NotImplementedError

    def worker_pids(self) -> list[int]:
        return [w.pid for w in getattr(self.it, "_workers", [])]

    def step(self) -> dict[str, float]:
        import torch

        t0 = time.perf_counter()
        views = next(self.it)
        t1 = time.perf_counter()
        with self.autocast():
            z = self.model(torch.cat(list(views)))
            loss = self.loss(z.float())
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

    def close(self) -> None:
        # Shut the persistent workers down so that RUSAGE_CHILDREN (their peak RSS) is collected.
        import gc

        del self.it, self.loader
        gc.collect()
        time.sleep(0.5)


class LightlyPeerRunner(PeerRunner):
    """lightly's SimCLR pipeline: ``SimCLRTransform``, ``SimCLRProjectionHead``, ``NTXentLoss``."""

    def build(self, spec: dict):
        peer_setup.define_torchvision_op_stubs()
        _import_probssl_models_only()
        import lightly
        from lightly.loss import NTXentLoss
        from lightly.models.modules import SimCLRProjectionHead
        from lightly.transforms import SimCLRTransform

        self.versions = {"lightly": lightly.__version__, "torchvision": __import__("torchvision").__version__}
        p, h = spec["augment"], spec["shape"][1]
        # lightly scales (cj_bright, cj_contrast, cj_sat, cj_hue) by cj_strength: strength 1 and the
        # recipe's own values reproduce probssl's jitter exactly.
        transform = SimCLRTransform(
            input_size=h,
            cj_prob=p["jitter_p"],
            cj_strength=1.0,
            cj_bright=p["brightness"],
            cj_contrast=p["contrast"],
            cj_sat=p["saturation"],
            cj_hue=p["hue"],
            min_scale=p["crop_scale"][0],
            random_gray_scale=p["grayscale_p"],
            gaussian_blur=p["blur_p"],
            vf_prob=p["vflip_p"],
            hf_prob=p["hflip_p"],
            rr_prob=0.0,
            normalize=None,
        )
        loss_fn = NTXentLoss(temperature=spec["temperature"])
        return transform, lambda fd: SimCLRProjectionHead(fd, 512, 128), lambda z: loss_fn(*z.chunk(2))


class PILPeerRunner(PeerRunner):
    """A per-image PIL/numpy implementation of probssl's recipe, with probssl's head and InfoNCE."""

    dataset_rng = True

    def build(self, spec: dict):
        import torch

        from probssl.losses import info_nce
        from probssl.models import ProjectionHead

        self.versions = {"PIL": __import__("PIL").__version__}
        c, h, w = spec["shape"]
        temperature, batch = spec["temperature"], spec["batch"]

        def loss(z):
            z = torch.nn.functional.normalize(z, dim=-1).reshape(VIEWS, batch, -1)
            return info_nce(z, temperature, gather=False)

        return PILSimCLRViews(spec["augment"], (h, w)), lambda fd: ProjectionHead(fd, 512, 128), loss


def _import_probssl_models_only() -> None:
    """Make ``probssl.models`` / ``probssl.losses`` importable in the peer venv (which has torch but
    not probssl's other dependencies) without running ``probssl/__init__``."""
    import types

    if "probssl" in sys.modules:
        return
    pkg = types.ModuleType("probssl")
    pkg.__path__ = [str(ROOT / "probssl")]
    sys.modules["probssl"] = pkg


RUNNERS = {"bare": BareRunner, "probssl": ProbsslRunner, "peer-lightly": LightlyPeerRunner, "peer-pil": PILPeerRunner}


def make_runner(spec: dict) -> Runner:
    cls = RUNNERS.get(spec["kind"])
    if cls is None:
        raise ValueError(f"unknown row kind {spec['kind']!r}")
    return cls(spec)
