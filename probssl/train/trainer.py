"""The one training loop shared by every method.

Data stay as uint8 tensors on the training device; each step indexes a batch, augments all its
views in one batched call and asks the method for its loss terms. Everything a run needs to
continue exactly (weights, optimiser, step, RNG states) goes into each checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch
import yaml
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from probssl.augment import Augmenter, recipe
from probssl.config import Config, from_dict, to_yaml
from probssl.data import DataSplits, load_dataset
from probssl.methods import Method, create_method
from probssl.train.checkpoint import CheckpointError, TrainingState, latest_checkpoint, load_checkpoint, save_checkpoint
from probssl.train.device import autocast, resolve_precision, select_device, use_channels_last
from probssl.train.distributed import DistributedContext, barrier, setup_distributed
from probssl.train.logging import MetricsLog, write_status
from probssl.train.optim import build_optimizer, match_state_layout, warmup_cosine


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, a run directory holding another run, ...)."""


class Preempted(KeyboardInterrupt):
    """SIGTERM (cluster preemption, ``kill``): stop like Ctrl-C, keeping the last checkpoint."""


@contextlib.contextmanager
def sigterm_interrupts():
    """Turn SIGTERM into :class:`Preempted` while training (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Preempted(f"received signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def build_augmenter(config: Config, image_shape: tuple[int, int, int]) -> Augmenter:
    overrides = {}
    for f in dataclasses.fields(config.augment):
        if f.name in ("recipe", "views", "clean_first_view"):
            continue
        value = getattr(config.augment, f.name)
        if value is not None:
            overrides[f.name] = tuple(value) if isinstance(value, list) else value
    params = recipe(config.augment.recipe, image_shape[0], **overrides)
    return Augmenter(params, output_size=image_shape[1:])


def load_splits(config: Config) -> DataSplits:
    d = config.data
    return load_dataset(
        d.name,
        d.data_dir,
        val_fraction=d.val_fraction,
        split_seed=d.split_seed,
        download=d.download,
        train_subset=d.train_subset,
    )


def to_float_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 [..., C, H, W] -> float32 in [0, 1]."""
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()


def check_config(config: Config) -> None:
    """Values that type-check but cannot work; each error names the key and the valid range."""
    t, a, m = config.train, config.augment, config.model
    problems = []
    if t.batch_size < 2:
        problems.append(f"train.batch_size must be >= 2 (contrastive losses need negatives), got {t.batch_size}")
    if t.epochs < 1:
        problems.append(f"train.epochs must be >= 1, got {t.epochs}")
    if t.lr <= 0:
        problems.append(f"train.lr must be > 0, got {t.lr}")
    if not 2 <= a.views <= 16:
        problems.append(f"augment.views must be between 2 and 16, got {a.views}")
    if m.embed_dim < 2:
        problems.append(f"model.embed_dim must be >= 2 (the sphere S^(d-1) needs d >= 2), got {m.embed_dim}")
    if config.method.temperature <= 0:
        problems.append(f"method.temperature must be > 0, got {config.method.temperature}")
    if config.method.beta < 0:
        problems.append(f"method.beta must be >= 0, got {config.method.beta}")
    if not 0 < config.data.val_fraction < 1:
        problems.append(f"data.val_fraction must be in (0, 1), got {config.data.val_fraction}")
    c = config.method
    if c.latent not in ("gaussian", "bernoulli"):
        problems.append(f"method.latent must be gaussian or bernoulli, got {c.latent!r}")
    if c.latent_dim < 1:
        problems.append(f"method.latent_dim must be >= 1, got {c.latent_dim}")
    if len(c.relax_temperature) != 2 or min(c.relax_temperature) <= 0:
        problems.append(f"method.relax_temperature must be two values > 0 (start, end), got {c.relax_temperature}")
    if c.prior_variance <= 0:
        problems.append(f"method.prior_variance must be > 0, got {c.prior_variance}")
    if t.skip_nonfinite < 0:
        problems.append(f"train.skip_nonfinite must be >= 0, got {t.skip_nonfinite}")
    if problems:
        raise TrainingError("Invalid config: " + "; ".join(problems) + ".")


# Settings that change how a run is watched or where it runs, not what it computes: a run may be
# resumed with different values of these.
OPERATIONAL_KEYS = {
    "train": {
        "progress",
        "num_threads",
        "log_every",
        "checkpoint_every",
        "checkpoint_every_steps",
        "tensorboard",
        "device",
    },
    "eval": None,
}


def run_identity(config: Config) -> dict:
    """The part of a config that decides a run's results (compared when resuming)."""
    identity = config.to_dict()
    for section, keys in OPERATIONAL_KEYS.items():
        if keys is None:
            identity.pop(section, None)
        else:
            for key in keys:
                identity[section].pop(key, None)
    return identity


def step_seed(seed: int, step: int, rank: int) -> int:
    """A distinct, reproducible seed for every (run, step, rank): a resumed run, or one on another
    number of processes, draws exactly the augmentations and noise it would have drawn."""
    return ((seed * 1_000_003 + step) * 1024 + rank) % (2**63 - 1)


class Trainer:
    """Trains ``config``'s method into ``run_dir``.

    resume: None (the run directory must not hold another run), "auto" (continue from the
    latest checkpoint if there is one) or a checkpoint folder.
    """

    def __init__(
        self,
        config: Config,
        run_dir: str | Path,
        *,
        resume: str | None = None,
        splits: DataSplits | None = None,
        echo: Callable[[str], None] = print,
    ):
        check_config(config)
        self.config = config
        self.run_dir = Path(run_dir)
        t = config.train
        self.dist: DistributedContext = setup_distributed(t.device)
        self.echo = echo if self.dist.is_main else (lambda _msg: None)
        if t.num_threads > 0:
            torch.set_num_threads(t.num_threads)
        elif self.dist.enabled:
            torch.set_num_threads(1)  # several processes on one CPU: one thread each, or they thrash
        if t.deterministic:
            torch.use_deterministic_algorithms(True)
        self.device = select_device(t.device)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        self.precision = resolve_precision(t.precision, self.device)
        if self.device.type == "cpu":
            # Adam's second moments and BN statistics drift into denormal floats, which x86 handles
            # in microcode: measured 40x slower steps on the digits preset without this.
            torch.set_flush_denormal(True)
        torch.manual_seed(t.seed)

        self.splits = splits if splits is not None else load_splits(config)
        self.image_shape = self.splits.image_shape
        self.method: Method = create_method(config, self.image_shape).to(self.device)
        self.channels_last = use_channels_last(config.model.channels_last, self.method, self.device, self.precision)
        if self.channels_last:
            self.method = self.method.to(memory_format=torch.channels_last)
        self.model = self.method  # what the loop calls: the method itself, or its DDP wrapper
        if self.dist.enabled:
            if t.sync_batchnorm:
                if self.device.type != "cuda":
                    raise TrainingError("train.sync_batchnorm needs CUDA (SyncBatchNorm does not run on CPU).")
                self.method = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.method)
            self.model = DistributedDataParallel(
                self.method, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.augmenter = build_augmenter(config, self.image_shape)
        self.optimizer = build_optimizer(self.method, t.optimizer, t.lr, t.weight_decay, t.momentum, t.adam_eps)
        for group in self.optimizer.param_groups:
            group["base_lr"] = group["lr"]

        n = len(self.splits.train)
        self.batch_size = min(t.batch_size, n)  # the global batch, split evenly over the ranks
        if self.batch_size % self.dist.world_size:
            raise TrainingError(
                f"train.batch_size={self.batch_size} must be divisible by the number of "
                f"processes ({self.dist.world_size})."
            )
        self.local_batch = self.batch_size // self.dist.world_size
        self.steps_per_epoch = n // self.batch_size  # drop_last: every step sees a full batch
        self.total_steps = t.epochs * self.steps_per_epoch
        if t.max_steps is not None:
            self.total_steps = min(self.total_steps, t.max_steps)
        self.warmup_steps = int(round(t.warmup_epochs * self.steps_per_epoch))

        self.order_rng = torch.Generator().manual_seed(t.seed)  # same on every rank
        self.augment_rng = torch.Generator()  # re-seeded every step, see step_seed
        self.order_rng_epoch_start = self.order_rng.get_state()
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.skipped_steps = 0
        self.tensorboard = None
        self.images = self.splits.train.images.to(self.device)
        self.labels = self.splits.train.labels.to(self.device)
        self.log = MetricsLog(self.run_dir / "metrics.jsonl")
        self._prepare_run_dir(resume)
        if t.tensorboard and self.dist.is_main:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise TrainingError(
                    "train.tensorboard=true needs the tensorboard package: "
                    "pip install tensorboard (or pip install 'probssl[tensorboard]')."
                ) from None
            self.tensorboard = SummaryWriter(str(self.run_dir / "tensorboard"))

    # ------------------------------------------------------------------ run directory
    def _prepare_run_dir(self, resume: str | None) -> None:
        ckpt_dir = self.run_dir / "checkpoints"
        config_file = self.run_dir / "config.yaml"
        if config_file.exists():
            saved = from_dict(yaml.safe_load(config_file.read_text()))
            if run_identity(saved) != run_identity(self.config):
                raise TrainingError(
                    f"{self.run_dir} holds a run with a different config ({config_file}); "
                    "choose another --out directory."
                )
        if resume is None:
            if latest_checkpoint(ckpt_dir) is not None or self.log.path.exists():
                raise TrainingError(
                    f"{self.run_dir} already holds a run. Continue it with --resume auto, or choose "
                    "another --out directory."
                )
        else:
            path = latest_checkpoint(ckpt_dir) if resume == "auto" else Path(resume)
            if path is not None:
                self._restore(load_checkpoint(path))
                self.echo(f"resumed from {path} (step {self.step}, epoch {self.epoch})")
        barrier(self.dist)  # every rank has checked the directory before rank 0 writes to it
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            config_file.write_text(to_yaml(self.config))

    def _restore(self, state: TrainingState) -> None:
        if run_identity(from_dict(state.config)) != run_identity(self.config):
            raise CheckpointError(
                "the checkpoint was written by a run with a different config; "
                "resume with the same preset and overrides."
            )
        self.method.load_state_dict(state.model)
        if state.optimizer is not None:
            self.optimizer.load_state_dict(state.optimizer)
            match_state_layout(self.optimizer)
        self.step, self.epoch, self.batch_in_epoch = state.step, state.epoch, state.batch_in_epoch
        self.order_rng_epoch_start = state.rng["order_epoch_start"]
        self.order_rng.set_state(state.rng["order"])
        self.skipped_steps = state.extra.get("skipped_steps", 0)
        if self.dist.is_main:
            self.log.truncate_after(self.step)

    def training_state(self) -> TrainingState:
        # Augmentation and noise generators are re-seeded every step (step_seed), so the data
        # order is the only random state a resume needs.
        rng = {"order": self.order_rng.get_state(), "order_epoch_start": self.order_rng_epoch_start}
        return TrainingState(
            model=self.method.state_dict(),
            optimizer=self.optimizer.state_dict(),
            step=self.step,
            epoch=self.epoch,
            batch_in_epoch=self.batch_in_epoch,
            rng=rng,
            config=self.config.to_dict(),
            extra={
                "image_shape": list(self.image_shape),
                "num_classes": self.splits.num_classes,
                "dataset": self.splits.name,
                "method": self.config.method.name,
                "skipped_steps": self.skipped_steps,
                "world_size": self.dist.world_size,
            },
        )

    def save(self) -> Path | None:
        """Rank 0 writes the checkpoint; the others wait so no rank runs ahead of a save."""
        path = save_checkpoint(self.run_dir / "checkpoints", self.training_state()) if self.dist.is_main else None
        barrier(self.dist)
        return path

    # ------------------------------------------------------------------ the loop
    def train_step(self, index: torch.Tensor) -> dict[str, float] | None:
        """One optimiser step on this rank's share ``index`` of the global batch.

        Returns the logged statistics, or None when a non-finite loss was skipped.
        """
        seed = step_seed(self.config.train.seed, self.step, self.dist.rank)
        self.augment_rng.manual_seed(seed)
        torch.manual_seed(seed)  # posterior samples, dropout
        images = to_float_images(self.images[index])
        views = self.augmenter(images, views=self.config.augment.views, generator=self.augment_rng)
        if self.config.augment.clean_first_view:
            views[0] = images
        labels = self.labels[index] if self.method.supervised else None
        scale = warmup_cosine(self.step, self.total_steps, self.warmup_steps, self.config.train.min_lr_ratio)
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * scale
        self.method.on_step(self.step, self.total_steps)
        with autocast(self.device, self.precision):
            terms = self.model(views, labels)
        loss = sum(terms.values())
        if not torch.isfinite(loss):
            bad = [k for k, v in terms.items() if not torch.isfinite(v)]
            detail = ", ".join(f"{k} = {terms[k].item()}" for k in bad)
            if self.skipped_steps < self.config.train.skip_nonfinite and not self.dist.enabled:
                self.skipped_steps += 1
                self.echo(
                    f"skipped step {self.step}: non-finite {detail} "
                    f"({self.skipped_steps}/{self.config.train.skip_nonfinite} allowed)"
                )
                return None
            raise TrainingError(
                f"Non-finite loss at step {self.step} (epoch {self.epoch}): term(s) {detail}. The last good "
                f"checkpoint is kept in {self.run_dir / 'checkpoints'}; lower train.lr, check the data, or set "
                "train.skip_nonfinite=N to skip up to N such steps."
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {
            "loss": loss.item(),
            **{k: v.item() for k, v in terms.items()},
            "lr": self.optimizer.param_groups[0]["lr"],
        }

    def _epoch_order(self) -> torch.Tensor:
        """The global permutation of this epoch (identical on every rank)."""
        n = len(self.images)
        if self.batch_in_epoch == 0:
            self.order_rng_epoch_start = self.order_rng.get_state()
            return torch.randperm(n, generator=self.order_rng)
        replay = torch.Generator()  # resumed mid-epoch: replay this epoch's order
        replay.set_state(self.order_rng_epoch_start)
        return torch.randperm(n, generator=replay)

    def _log(self, stats: dict[str, float], rate: float) -> None:
        record = {"step": self.step, "epoch": self.epoch, **stats, "img_per_s": rate}
        if self.dist.is_main:
            self.log.write(record)
            if self.tensorboard is not None:
                for key, value in stats.items():
                    self.tensorboard.add_scalar(f"train/{key}", value, self.step)

    def fit(self) -> Method:
        t = self.config.train
        if self.dist.is_main:
            write_status(
                self.run_dir, "running", step=self.step, total_steps=self.total_steps, world_size=self.dist.world_size
            )
        bar = tqdm(
            total=self.total_steps,
            initial=self.step,
            disable=not (t.progress and self.dist.is_main),
            mininterval=1.0,
            desc=self.config.method.name,
            unit="step",
            dynamic_ncols=True,
        )
        self.model.train()
        start = self.dist.rank * self.local_batch
        try:
            with sigterm_interrupts():
                self._loop(bar, start)
        except BaseException as err:
            bar.close()
            if self.dist.is_main:
                write_status(
                    self.run_dir,
                    "interrupted" if isinstance(err, KeyboardInterrupt) else "failed",
                    step=self.step,
                    error=str(err),
                )
            raise
        bar.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
        if self.dist.is_main:
            write_status(self.run_dir, "finished", step=self.step, epoch=self.epoch, skipped_steps=self.skipped_steps)
        self.method.eval()
        return self.method

    def _loop(self, bar, start: int) -> None:
        """Epochs of steps until total_steps; checkpoints on the configured cadence."""
        t = self.config.train
        while self.step < self.total_steps:
            perm = self._epoch_order().to(self.device)
            tic, seen = time.perf_counter(), 0
            for b in range(self.batch_in_epoch, self.steps_per_epoch):
                batch = perm[b * self.batch_size : (b + 1) * self.batch_size]
                stats = self.train_step(batch[start : start + self.local_batch])
                self.step += 1
                self.batch_in_epoch = b + 1
                seen += self.batch_size
                rate = seen / max(time.perf_counter() - tic, 1e-9)
                bar.update(1)
                if stats is not None and (self.step % t.log_every == 0 or self.step == self.total_steps):
                    bar.set_postfix(loss=f"{stats['loss']:.4f}", img_s=f"{rate:.0f}", refresh=False)
                    self._log(stats, rate)
                if self.step >= self.total_steps:
                    break
                if t.checkpoint_every_steps > 0 and self.step % t.checkpoint_every_steps == 0:
                    self.save()
            if self.batch_in_epoch >= self.steps_per_epoch:
                self.epoch += 1
                self.batch_in_epoch = 0
            finished = self.step >= self.total_steps
            if finished or (t.checkpoint_every > 0 and self.epoch % t.checkpoint_every == 0):
                self.save()


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[Config, Method, TrainingState]:
    """Rebuild a trained method from the latest checkpoint of ``run_dir``."""
    path = latest_checkpoint(Path(run_dir) / "checkpoints")
    if path is None:
        raise CheckpointError(f"{run_dir} has no checkpoint (expected {Path(run_dir) / 'checkpoints'}/step-*/).")
    state = load_checkpoint(path, map_location="cpu")
    config = from_dict(state.config)
    method = create_method(config, tuple(state.extra["image_shape"]))
    method.load_state_dict(state.model)
    return config, method.to(device).eval(), state
