"""The one training loop shared by every method.

Data stay as uint8 tensors on the training device; each step indexes a batch, augments all its
views in one batched call and asks the method for its loss terms. Everything a run needs to
continue exactly (weights, optimiser, step, RNG states) goes into each checkpoint.
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Callable

import torch
import yaml
from tqdm import tqdm

from probssl.augment import Augmenter, recipe
from probssl.config import Config, from_dict, to_yaml
from probssl.data import DataSplits, load_dataset
from probssl.methods import Method, create_method
from probssl.train.checkpoint import (CheckpointError, TrainingState, latest_checkpoint, load_checkpoint,
                                      save_checkpoint)
from probssl.train.device import autocast, resolve_precision, select_device
from probssl.train.logging import MetricsLog, write_status
from probssl.train.optim import build_optimizer, warmup_cosine


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, a run directory holding another run, ...)."""


def build_augmenter(config: Config, image_shape: tuple[int, int, int]) -> Augmenter:
    overrides = {}
    for f in dataclasses.fields(config.augment):
        if f.name in ("recipe", "views"):
            continue
        value = getattr(config.augment, f.name)
        if value is not None:
            overrides[f.name] = tuple(value) if isinstance(value, list) else value
    params = recipe(config.augment.recipe, image_shape[0], **overrides)
    return Augmenter(params, output_size=image_shape[1:])


def load_splits(config: Config) -> DataSplits:
    d = config.data
    return load_dataset(d.name, d.data_dir, val_fraction=d.val_fraction, split_seed=d.split_seed,
                        download=d.download, train_subset=d.train_subset)


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
    if problems:
        raise TrainingError("Invalid config: " + "; ".join(problems) + ".")


class Trainer:
    """Trains ``config``'s method into ``run_dir``.

    resume: None (the run directory must not hold another run), "auto" (continue from the
    latest checkpoint if there is one) or a checkpoint folder.
    """

    def __init__(self, config: Config, run_dir: str | Path, *, resume: str | None = None,
                 splits: DataSplits | None = None, echo: Callable[[str], None] = print):
        check_config(config)
        self.config = config
        self.run_dir = Path(run_dir)
        self.echo = echo
        t = config.train
        if t.num_threads > 0:
            torch.set_num_threads(t.num_threads)
        self.device = select_device(t.device)
        self.precision = resolve_precision(t.precision, self.device)
        if self.device.type == "cpu":
            # Adam's second moments and BN statistics drift into denormal floats, which x86 handles
            # in microcode: measured 40x slower steps on the digits preset without this.
            torch.set_flush_denormal(True)
        torch.manual_seed(t.seed)

        self.splits = splits if splits is not None else load_splits(config)
        self.image_shape = self.splits.image_shape
        self.method: Method = create_method(config, self.image_shape).to(self.device)
        if config.model.channels_last:
            self.method = self.method.to(memory_format=torch.channels_last)
        self.augmenter = build_augmenter(config, self.image_shape)
        self.optimizer = build_optimizer(self.method, t.optimizer, t.lr, t.weight_decay, t.momentum, t.adam_eps)
        for group in self.optimizer.param_groups:
            group["base_lr"] = group["lr"]

        n = len(self.splits.train)
        self.batch_size = min(t.batch_size, n)
        self.steps_per_epoch = n // self.batch_size  # drop_last: every step sees a full batch
        self.total_steps = t.epochs * self.steps_per_epoch
        if t.max_steps is not None:
            self.total_steps = min(self.total_steps, t.max_steps)
        self.warmup_steps = int(round(t.warmup_epochs * self.steps_per_epoch))

        self.order_rng = torch.Generator().manual_seed(t.seed)
        self.augment_rng = torch.Generator().manual_seed(t.seed + 1)
        self.order_rng_epoch_start = self.order_rng.get_state()
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.images = self.splits.train.images.to(self.device)
        self.labels = self.splits.train.labels.to(self.device)
        self.log = MetricsLog(self.run_dir / "metrics.jsonl")
        self._prepare_run_dir(resume)

    # ------------------------------------------------------------------ run directory
    def _prepare_run_dir(self, resume: str | None) -> None:
        ckpt_dir = self.run_dir / "checkpoints"
        config_file = self.run_dir / "config.yaml"
        if config_file.exists():
            saved = from_dict(yaml.safe_load(config_file.read_text()))
            if saved.to_dict() != self.config.to_dict():
                raise TrainingError(
                    f"{self.run_dir} holds a run with a different config ({config_file}); "
                    "choose another --out directory.")
        if resume is None:
            if latest_checkpoint(ckpt_dir) is not None or self.log.path.exists():
                raise TrainingError(
                    f"{self.run_dir} already holds a run. Continue it with --resume auto, or choose "
                    "another --out directory.")
        else:
            path = latest_checkpoint(ckpt_dir) if resume == "auto" else Path(resume)
            if path is not None:
                self._restore(load_checkpoint(path))
                self.echo(f"resumed from {path} (step {self.step}, epoch {self.epoch})")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        config_file.write_text(to_yaml(self.config))

    def _restore(self, state: TrainingState) -> None:
        if from_dict(state.config).to_dict() != self.config.to_dict():
            raise CheckpointError("the checkpoint was written by a run with a different config; "
                                  "resume with the same preset and overrides.")
        self.method.load_state_dict(state.model)
        if state.optimizer is not None:
            self.optimizer.load_state_dict(state.optimizer)
        self.step, self.epoch, self.batch_in_epoch = state.step, state.epoch, state.batch_in_epoch
        self.order_rng_epoch_start = state.rng["order_epoch_start"]
        self.order_rng.set_state(state.rng["order"])
        self.augment_rng.set_state(state.rng["augment"])
        torch.set_rng_state(state.rng["torch"])
        if self.device.type == "cuda" and "cuda" in state.rng:
            torch.cuda.set_rng_state(state.rng["cuda"], self.device)
        self.log.truncate_after(self.step)

    def training_state(self) -> TrainingState:
        rng = {"order": self.order_rng.get_state(), "order_epoch_start": self.order_rng_epoch_start,
               "augment": self.augment_rng.get_state(), "torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return TrainingState(
            model=self.method.state_dict(), optimizer=self.optimizer.state_dict(), step=self.step,
            epoch=self.epoch, batch_in_epoch=self.batch_in_epoch, rng=rng, config=self.config.to_dict(),
            extra={"image_shape": list(self.image_shape), "num_classes": self.splits.num_classes,
                   "dataset": self.splits.name, "method": self.config.method.name})

    def save(self) -> Path:
        return save_checkpoint(self.run_dir / "checkpoints", self.training_state())

    # ------------------------------------------------------------------ the loop
    def train_step(self, index: torch.Tensor) -> dict[str, float]:
        images = to_float_images(self.images[index])
        views = self.augmenter(images, views=self.config.augment.views, generator=self.augment_rng)
        labels = self.labels[index] if self.method.supervised else None
        scale = warmup_cosine(self.step, self.total_steps, self.warmup_steps, self.config.train.min_lr_ratio)
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * scale
        self.method.on_step(self.step, self.total_steps)
        with autocast(self.device, self.precision):
            terms = self.method(views, labels)
        loss = sum(terms.values())
        if not torch.isfinite(loss):
            bad = [k for k, v in terms.items() if not torch.isfinite(v)]
            raise TrainingError(
                f"Non-finite loss at step {self.step} (epoch {self.epoch}): term(s) {', '.join(bad)} = "
                f"{', '.join(str(terms[k].item()) for k in bad)}. The last good checkpoint is kept in "
                f"{self.run_dir / 'checkpoints'}; lower train.lr or check the data.")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.item(), **{k: v.item() for k, v in terms.items()}, "lr": self.optimizer.param_groups[0]["lr"]}

    def fit(self) -> Method:
        t = self.config.train
        n = len(self.images)
        write_status(self.run_dir, "running", step=self.step, total_steps=self.total_steps)
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not t.progress, mininterval=1.0,
                   desc=f"{self.config.method.name}", unit="step", dynamic_ncols=True)
        self.method.train()
        try:
            while self.step < self.total_steps:
                if self.batch_in_epoch == 0:
                    self.order_rng_epoch_start = self.order_rng.get_state()
                    perm = torch.randperm(n, generator=self.order_rng)
                else:  # resumed mid-epoch: replay this epoch's order
                    replay = torch.Generator().manual_seed(0)
                    replay.set_state(self.order_rng_epoch_start)
                    perm = torch.randperm(n, generator=replay)
                perm = perm.to(self.device)
                tic, seen = time.perf_counter(), 0
                for b in range(self.batch_in_epoch, self.steps_per_epoch):
                    stats = self.train_step(perm[b * self.batch_size:(b + 1) * self.batch_size])
                    self.step += 1
                    self.batch_in_epoch = b + 1
                    seen += self.batch_size
                    rate = seen / max(time.perf_counter() - tic, 1e-9)
                    bar.update(1)
                    if self.step % t.log_every == 0 or self.step == self.total_steps:
                        bar.set_postfix(loss=f"{stats['loss']:.4f}", img_s=f"{rate:.0f}", refresh=False)
                        self.log.write({"step": self.step, "epoch": self.epoch, **stats, "img_per_s": rate})
                    if self.step >= self.total_steps:
                        break
                if self.batch_in_epoch >= self.steps_per_epoch:
                    self.epoch += 1
                    self.batch_in_epoch = 0
                finished = self.step >= self.total_steps
                if finished or (t.checkpoint_every > 0 and self.epoch % t.checkpoint_every == 0):
                    self.save()
        except BaseException as err:
            bar.close()
            write_status(self.run_dir, "failed" if not isinstance(err, KeyboardInterrupt) else "interrupted",
                         step=self.step, error=str(err))
            raise
        bar.close()
        write_status(self.run_dir, "finished", step=self.step, epoch=self.epoch)
        self.method.eval()
        return self.method


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
