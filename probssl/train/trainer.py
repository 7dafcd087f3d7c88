"""The one training loop shared by every method.

Data stay as uint8 tensors on the training device; each step indexes a batch, augments all its
views in one batched call and asks the method for its loss terms. Everything a run needs to
continue exactly (weights, optimiser, step, RNG states) goes into each checkpoint.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import yaml
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from probssl.augment import Augmenter, augmenter_from_config
from probssl.config import Config, from_dict, operational_keys, to_yaml
from probssl.data import DataSplits, load_splits, to_float_images
from probssl.data.lazy import is_lazy
from probssl.methods import Method, create_method
from probssl.train.callbacks import Callback, default_callbacks
from probssl.train.checkpoint import (
    DAMAGED,
    CheckpointError,
    TrainingState,
    latest_checkpoint,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from probssl.train.conv_guard import guard_cpu_bf16_convs
from probssl.train.device import (
    autocast,
    choose_channels_last,
    choose_compile,
    choose_precision,
    has_cxx_compiler,
    select_device,
)
from probssl.train.distributed import DistributedContext, barrier, setup_distributed
from probssl.train.environment import environment_record, with_previous
from probssl.train.feed import default_loader_workers, training_batches
from probssl.train.lock import RunInUse, RunLock
from probssl.train.logging import Heartbeat, MetricsLog, write_json_atomic, write_status
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
    """``probssl.augment.augmenter_from_config`` of a whole config (kept for callers of probssl <= 0.1)."""
    return augmenter_from_config(config.augment, image_shape)


def check_config(config: Config) -> None:
    """Every check of ``config`` (each field's range and choices, each section's and method's own checks);
    raises :class:`~probssl.config.ConfigError`. Configs built by ``load_config`` are already checked; this
    also catches values set in Python after building."""
    config.validate()


def run_identity(config: Config) -> dict:
    """The part of a config that decides a run's results (compared when resuming): everything but the
    operational fields (``probssl.config.operational_keys``) and the eval section."""
    identity = config.to_dict()
    identity.pop("eval", None)
    for key in operational_keys():
        section, name = key.split(".")
        identity.get(section, {}).pop(name, None)
    return identity


# The training budget: a run may be continued with a larger one (``--resume auto --set train.epochs=N``).
BUDGET_KEYS = ("train.epochs", "train.max_steps")
# A head fitted after training changes no weight: on resume the checkpoint decides whether the run carries it
# (``Method.match_state``), so a run started before a method's default changed resumes with today's preset.
HEAD_KEYS = ("method.epistemic",)
RESUMABLE_CHANGES = (*BUDGET_KEYS, *HEAD_KEYS)  # what may differ between a run and its resume


def identity_differences(saved: Config, current: Config, ignore: Sequence[str] = ()) -> list[str]:
    """``section.key: saved -> current`` for every result-changing key that differs, except the ``section.key``
    names in ``ignore`` (a resume passes :data:`BUDGET_KEYS`)."""
    a, b = run_identity(saved), run_identity(current)
    out = []
    for section in sorted(set(a) | set(b)):
        for key in sorted(set(a.get(section, {})) | set(b.get(section, {}))):
            old, new = a.get(section, {}).get(key), b.get(section, {}).get(key)
            if old != new and f"{section}.{key}" not in ignore:
                out.append(f"{section}.{key}: {old!r} -> {new!r}")
    return out


def step_seed(seed: int, step: int, rank: int) -> int:
    """A distinct, reproducible seed for every (run, step, rank), seeding that rank's augmentations and noise.

    A resumed run draws exactly the augmentations and noise it would have drawn (on the same number of
    processes). A run on another number of processes does not: the rank is mixed in, so under torchrun each
    rank's share of the batch gets other views than one process would give the same images (and batch-norm
    statistics are per process), so N processes do not reproduce a 1-process run's losses or weights."""
    return ((seed * 1_000_003 + step) * 1024 + rank) % (2**63 - 1)


class Trainer:
    """Trains a method into ``run_dir``.

    config: the run's config (the default way: everything is built from it and recorded in the run).
    resume: None (the run directory must not hold another run), "auto" (continue from the latest
        checkpoint if there is one) or a checkpoint folder.
    splits: data to train on instead of ``config.data`` (:class:`~probssl.data.DataSplits`).
    method: a built :class:`~probssl.methods.Method` to train instead of building ``config.method``.
    backbone: an ``nn.Module`` instance to wrap in ``config.method`` (``feature_dim`` read, or found by
        one dry forward). A run trained from objects records its config as usual, but rebuilding it in a
        new process (``load_run``, ``probssl eval``) needs the same objects, or a backbone given as
        ``model.backbone: package.module:callable``.
    callbacks: objects with some of the hooks of :class:`~probssl.train.callbacks.Callback`.
    """

    def __init__(
        self,
        config: Config,
        run_dir: str | Path,
        *,
        resume: str | None = None,
        splits: DataSplits | None = None,
        method: Method | None = None,
        backbone: torch.nn.Module | None = None,
        callbacks: Sequence[Callback] = (),
        echo: Callable[[str], None] = print,
    ):
        check_config(config)
        self.config = config
        self.run_dir = Path(run_dir)
        self.bar_extra: dict[str, str] = {}  # progress-bar fields callbacks add (log_extra), e.g. the monitors' kNN
        self.callbacks = [*default_callbacks(config), *callbacks]  # e.g. the online monitors of train.monitor_every
        self._setup_runtime(echo)
        torch.manual_seed(config.train.seed)
        self.splits = splits if splits is not None else load_splits(config.data)
        self.image_shape = self.splits.image_shape
        self._setup_model(method, backbone)
        self.augmenter = augmenter_from_config(config.augment, self.image_shape)
        t = config.train
        self.optimizer = build_optimizer(self.method, t.optimizer, t.lr, t.weight_decay, t.momentum, t.adam_eps)
        for group in self.optimizer.param_groups:
            group["base_lr"] = group["lr"]
        self._setup_schedule()
        self._setup_compile()
        self.order_rng = torch.Generator().manual_seed(t.seed)  # same on every rank
        self.augment_rng = torch.Generator()  # re-seeded every step, see step_seed
        self.order_rng_epoch_start = self.order_rng.get_state()
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.skipped_steps = 0
        self.tensorboard = None
        self.bar = None
        self.heartbeat: Heartbeat | None = None  # rank 0's status.json writer while fit() runs
        self.images = self.splits.train.images.to(self.device)
        self.labels = self.splits.train.labels.to(self.device)
        self.log = MetricsLog(self.run_dir / "metrics.jsonl")
        self.lock = RunLock(self.run_dir)
        try:
            self._prepare_run_dir(resume)
        except BaseException:
            self.lock.release()
            raise
        if t.tensorboard and self.dist.is_main:
            self.tensorboard = _tensorboard_writer(self.run_dir / "tensorboard")

    # ------------------------------------------------------------------ setup
    def _setup_runtime(self, echo: Callable[[str], None]) -> None:
        """Processes, threads, device and precision."""
        t = self.config.train
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
        choice = choose_precision(t.precision, self.device)
        self.precision, self.precision_reason = choice.precision, choice.reason
        if self.device.type == "cpu":
            # Adam's second moments and BN statistics drift into denormal floats, which x86 handles
            # in microcode: measured 40x slower steps on the digits preset without this.
            torch.set_flush_denormal(True)

    def _setup_model(self, method: Method | None, backbone: torch.nn.Module | None) -> None:
        """The method (given, or built around ``backbone`` / the config's backbone), its memory format and
        its DistributedDataParallel wrapper."""
        if method is None:
            method = create_method(self.config, self.image_shape, backbone=backbone)
        elif backbone is not None:
            raise TrainingError("give Trainer a method or a backbone, not both (a method holds its backbone)")
        self.method: Method = method.to(self.device)
        self.channels_last, self.channels_last_reason = choose_channels_last(
            self.config.model.channels_last, self.method, self.device, self.precision
        )
        if self.channels_last:
            self.method = self.method.to(memory_format=torch.channels_last)
        # a CPU bf16 kernel bug corrupts strided convolutions' weight gradients on 1-pixel inputs (conv_guard)
        self.fp32_convs = guard_cpu_bf16_convs(self.method, self.image_shape, self.device, self.precision)
        self.model = self.method  # what the loop calls: the method itself, or its DDP wrapper
        if self.dist.enabled:
            if self.config.train.sync_batchnorm:
                if self.device.type != "cuda":
                    raise TrainingError("train.sync_batchnorm needs CUDA (SyncBatchNorm does not run on CPU).")
                self.method = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.method)
            self.model = DistributedDataParallel(
                self.method, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )

    def _setup_schedule(self) -> None:
        """Global and per-rank batch sizes, steps per epoch, total and warm-up steps."""
        t = self.config.train
        n = len(self.splits.train)
        self.batch_size = min(t.batch_size, n)  # the global batch, split evenly over the ranks
        if self.batch_size < 2:
            raise TrainingError(f"training needs at least 2 images per batch; the training split has {n}.")
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

    def _setup_compile(self) -> None:
        """``train.compile``: torch.compile of what the loop calls (the method or its DDP wrapper) with
        ``train.compile_backend``. Checkpoints read the uncompiled method, so they are the same either way.

        It compiles once per run (tests/train/test_compile.py counts the compiles): every step has the same
        batch shape (drop_last), and state that changes every step (SCL's relaxation temperature, MoCo's queue)
        is held in tensors, whose values torch.compile does not guard on. Choices: ``dynamic`` is left at its
        default (None: static shapes first) rather than False: if a shape or a Python number did change, the
        default recompiles once with it symbolic, where False would recompile on every new value until
        ``torch._dynamo.config.cache_size_limit`` (8) and then run eager. That limit and ``mark_static`` are
        left alone: they are process-wide, and nothing here needs them.
        """
        t = self.config.train
        choice = choose_compile(t.compile, self.device, self.total_steps, self.precision)
        self.compiled, self.compile_reason = choice.enabled, choice.reason
        if not choice.enabled:
            return
        if t.compile_backend == "inductor" and self.device.type == "cpu" and not has_cxx_compiler():
            raise TrainingError(
                "train.compile=true with train.compile_backend=inductor needs a C++ compiler on CPU (inductor builds "
                "its kernels with it) and none was found ($CXX, c++, g++, clang++); install one (e.g. apt-get "
                "install g++), or set train.compile=false."
            )
        self.compile_reason += f" (backend {t.compile_backend})"
        self.model = torch.compile(self.model, backend=t.compile_backend)

    def runtime_record(self) -> dict:
        """How this run executes and why (recorded in status.json): precision, compile, memory format."""
        return {
            "device": str(self.device),
            "precision": self.precision,
            "precision_reason": self.precision_reason,
            "compile": self.compiled,
            "compile_reason": self.compile_reason,
            "channels_last": self.channels_last,
            "channels_last_reason": self.channels_last_reason,
            "fp32_convs": self.fp32_convs,
            "world_size": self.dist.world_size,
            "data": self._data_record(),
        }

    def _data_record(self) -> str:
        """How the training images reach the step: held in memory, or streamed (``data.in_memory``)."""
        if not is_lazy(self.images):
            return "in memory"
        workers = self.config.data.loader_workers
        workers = default_loader_workers() if workers is None else workers
        return f"streamed from its files by {workers} DataLoader worker(s)" if workers else "streamed from its files"

    def _call(self, hook: str, *args) -> None:
        for callback in self.callbacks:
            fn = getattr(callback, hook, None)
            if fn is not None:
                fn(self, *args)

    # ------------------------------------------------------------------ run directory
    def _prepare_run_dir(self, resume: str | None) -> None:
        ckpt_dir = self.run_dir / "checkpoints"
        config_file = self.run_dir / "config.yaml"
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise TrainingError(f"--out {self.run_dir} is a file, not a folder; choose a folder for the run.")
        if self.dist.is_main:
            try:
                self.lock.acquire()
            except RunInUse as err:
                raise TrainingError(str(err)) from None
        if config_file.exists():
            saved = from_dict(yaml.safe_load(config_file.read_text()), migrate=True)
            differences = identity_differences(saved, self.config, ignore=RESUMABLE_CHANGES)
            if differences:
                raise TrainingError(
                    f"{self.run_dir} holds a run with a different config ({config_file}: "
                    f"{'; '.join(differences[:5])}). Resume it with the same preset and --set overrides, "
                    "or choose another --out directory."
                )
        if resume is None:
            if latest_checkpoint(ckpt_dir) is not None or self.log.path.exists():
                raise TrainingError(
                    f"{self.run_dir} already holds a run. Continue it with --resume auto, or choose "
                    "another --out directory."
                )
        else:
            path = self._resume_path(resume, ckpt_dir)
            if path is not None:
                self._restore(load_checkpoint(path), path)
                self._config_follows_the_checkpoints_heads()
                self.echo(f"resumed from {path} (step {self.step}, epoch {self.epoch})")
            elif self.dist.is_main:
                self.log.clear()  # killed before its first checkpoint: the run starts again at step 0
        barrier(self.dist)  # every rank has checked the directory before rank 0 writes to it
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            config_file.write_text(to_yaml(self.config))
            env_file = self.run_dir / "environment.json"
            write_json_atomic(env_file, with_previous(environment_record(self.runtime_record()), env_file, self.step))

    def _config_follows_the_checkpoints_heads(self) -> None:
        """After a resume, ``method.epistemic`` says what the checkpoint carries (see ``HEAD_KEYS``), so the
        config.yaml written next describes the run."""
        has_head = getattr(self.method, "feature_density", None) is not None
        if self.config.method.epistemic != has_head:
            self.echo(f"method.epistemic={has_head}: as the checkpoint (the run keeps the head it started with)")
            self.config.method.epistemic = has_head

    def _resume_path(self, resume: str, ckpt_dir: Path) -> Path | None:
        """``auto`` -> the latest checkpoint (None: start fresh); a run folder -> its latest; else a checkpoint."""
        if resume == "auto":
            return latest_checkpoint(ckpt_dir)
        path = Path(resume)
        if not path.exists():
            raise CheckpointError(
                f"--resume {resume}: no such file or folder (use --resume auto, or a checkpoint folder)"
            )
        if (path / "checkpoints").is_dir():
            latest = latest_checkpoint(path / "checkpoints")
            if latest is None:
                raise CheckpointError(f"--resume {resume}: that run has no checkpoint yet; use --resume auto")
            return latest
        return path

    def _restore(self, state: TrainingState, path: Path) -> None:
        """Load a checkpoint into the trainer; one that does not fit this run (another config, edited weights,
        optimiser groups or RNG state) is a :class:`CheckpointError` naming ``path``; no file of the run changes."""
        saved = from_dict(state.config, migrate=True)
        differences = identity_differences(saved, self.config, ignore=RESUMABLE_CHANGES)
        if differences:
            raise CheckpointError(
                f"{path} was written by a run with a different config ({'; '.join(differences[:5])}); "
                "resume with the same preset and --set overrides (only train.epochs / train.max_steps may change)."
            )
        if state.step > self.total_steps:
            raise TrainingError(
                f"{path} is at step {state.step}, past this config's budget of {self.total_steps} steps; continue "
                "with a train.epochs (or train.max_steps) at least as large as the run's."
            )
        self.method.match_state(state.model)
        load_weights(self.method, state.model, path)
        density = getattr(self.method, "feature_density", None)
        if state.step < self.total_steps and density is not None and bool(density.fitted):
            # a finished run continued for more epochs: its density describes the old backbone and is fitted again
            # when training ends; until then the method scores as during any training (e.g. the monitors)
            density.fitted.fill_(False)
        if state.optimizer is not None:
            self._restore_optimizer(state.optimizer, path)
        try:
            self.order_rng_epoch_start = state.rng["order_epoch_start"]
            self.order_rng.set_state(state.rng["order"])
            torch.Generator().set_state(self.order_rng_epoch_start)  # checks it, as set_state did for "order"
        except (KeyError, RuntimeError, TypeError) as err:
            raise CheckpointError(
                f"{path}: its data-order RNG state is missing or damaged ({err}); {DAMAGED}"
            ) from None
        self.step, self.epoch, self.batch_in_epoch = state.step, state.epoch, state.batch_in_epoch
        self.skipped_steps = state.extra.get("skipped_steps", 0)
        if self.dist.is_main:
            self.log.truncate_after(self.step)

    def _restore_optimizer(self, saved: dict, path: Path) -> None:
        """The optimiser's state from a checkpoint, checked against this optimiser: its groups (count, sizes,
        hyper-parameter keys and their types) and every moment's shape."""
        expected = [{k: v for k, v in g.items() if k != "params"} for g in self.optimizer.param_groups]
        try:
            self.optimizer.load_state_dict(saved)
        except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as err:
            raise CheckpointError(
                f"{path}: its optimiser state does not fit this optimiser ({err}); {DAMAGED}"
            ) from None
        for i, (want, group) in enumerate(zip(expected, self.optimizer.param_groups)):
            for key, value in want.items():
                number = isinstance(value, (int, float)) and not isinstance(value, bool)
                got = group.get(key)
                if key not in group or (number and (isinstance(got, bool) or not isinstance(got, (int, float)))):
                    raise CheckpointError(
                        f"{path}: optimiser group {i} has {key} = {got!r} (expected a value like {value!r}); {DAMAGED}"
                    )
        for param, entries in self.optimizer.state.items():
            for key, value in entries.items():
                if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != param.shape:
                    raise CheckpointError(
                        f"{path}: optimiser state {key!r} has shape {list(value.shape)} for a parameter of shape "
                        f"{list(param.shape)}; {DAMAGED}"
                    )
        match_state_layout(self.optimizer)

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
        """Rank 0 writes the checkpoint; the others wait so no rank runs ahead of a save.

        A parameter or buffer that is no longer finite (a diverged run: inf in batch-norm statistics while the
        loss still looked finite) stops the run instead of being saved as its result."""
        bad = next(
            (
                n
                for n, t in (*self.method.named_parameters(), *self.method.named_buffers())
                if t.is_floating_point() and not torch.isfinite(t).all()
            ),
            None,
        )
        if bad is not None:
            raise TrainingError(
                f"Training diverged by step {self.step}: {bad} holds NaN or inf. The last good checkpoint is kept in "
                f"{self.run_dir / 'checkpoints'} (if any); lower train.lr or check the data."
            )
        keep = self.config.train.keep_checkpoints
        path = save_checkpoint(self.run_dir / "checkpoints", self.training_state(), keep) if self.dist.is_main else None
        self._heartbeat(force=True)  # status.json's step then matches the newest checkpoint
        barrier(self.dist)
        return path

    # ------------------------------------------------------------------ the loop
    def train_step(self, index: torch.Tensor, images: torch.Tensor | None = None) -> dict[str, float] | None:
        """One optimiser step on this rank's share ``index`` (int64 ``[B]``) of the global batch.

        images: those rows' uint8 ``[B, C, H, W]`` on the device when the caller already has them (the loop's
        streaming loader); else they are indexed from the training images.
        Returns the logged statistics, or None when a non-finite loss was skipped.
        """
        seed = step_seed(self.config.train.seed, self.step, self.dist.rank)
        self.augment_rng.manual_seed(seed)
        torch.manual_seed(seed)  # posterior samples, dropout
        images = to_float_images(self.images[index] if images is None else images)
        views = self.augmenter(images, views=self.config.augment.views, generator=self.augment_rng)
        if self.config.augment.clean_first_view:
            views[0] = images
        labels = self.labels[index.to(self.labels.device)] if self.method.supervised else None
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
        self.method.after_optimizer_step(self.step, self.total_steps)
        return {
            "loss": loss.item(),
            **{k: v.item() for k, v in terms.items()},
            "lr": self.optimizer.param_groups[0]["lr"],
        }

    def _epoch_batches(self, start: int) -> list[torch.Tensor]:
        """This rank's index batch (int64 ``[local_batch]``, on the training device for in-memory images) for each
        remaining step of the epoch: rows ``start : start + local_batch`` of each global batch of the permutation."""
        perm = self._epoch_order()
        if not is_lazy(self.images):
            perm = perm.to(self.device)
        return [
            perm[b * self.batch_size : (b + 1) * self.batch_size][start : start + self.local_batch]
            for b in range(self.batch_in_epoch, self.steps_per_epoch)
        ]

    def _epoch_order(self) -> torch.Tensor:
        """The global permutation of this epoch (identical on every rank)."""
        n = len(self.images)
        if self.batch_in_epoch == 0:
            self.order_rng_epoch_start = self.order_rng.get_state()
            return torch.randperm(n, generator=self.order_rng)
        replay = torch.Generator()  # resumed mid-epoch: replay this epoch's order
        replay.set_state(self.order_rng_epoch_start)
        return torch.randperm(n, generator=replay)

    def log_extra(self, record: dict[str, float]) -> None:
        """Log numbers a callback measured (e.g. ``monitor/knn_acc``) at the current step: metrics.jsonl,
        TensorBoard and the progress bar."""
        if not self.dist.is_main:
            return
        self.log.write({"step": self.step, "epoch": self.epoch, **record})
        if self.tensorboard is not None:
            for key, value in record.items():
                self.tensorboard.add_scalar(key, value, self.step)
        if "monitor/knn_acc" in record:  # kept beside the loss in the bar until the next measurement
            self.bar_extra["kNN"] = f"{record['monitor/knn_acc']:.3f}"

    def _log(self, stats: dict[str, float], rate: float) -> None:
        """One training record. Its ``epoch`` is the number (from 1) of the epoch the step belongs to, its last step
        included: the monitors' record at the end of epoch 1 and the checkpoint written there say 1 too."""
        record = {"step": self.step, "epoch": self.epoch + 1, **stats, "img_per_s": rate}
        if self.dist.is_main:
            self.log.write(record)
            if self.tensorboard is not None:
                for key, value in stats.items():
                    self.tensorboard.add_scalar(f"train/{key}", value, self.step)

    def _heartbeat(self, force: bool = False) -> None:
        """Refresh status.json's step, epoch (completed epochs, as in checkpoints) and time on rank 0, at most every
        HEARTBEAT_SECONDS unless forced: readers tell a training run from a dead one by it (``read_status``)."""
        if self.heartbeat is not None:
            self.heartbeat.beat(force=force, step=self.step, epoch=self.epoch)

    def fit(self) -> Method:
        t = self.config.train
        if self.dist.is_main:
            self.heartbeat = Heartbeat(self.run_dir, {"total_steps": self.total_steps, **self.runtime_record()})
            self._heartbeat(force=True)
            self.echo(
                f"precision {self.precision} ({self.precision_reason}); compile {self.compile_reason}; "
                f"data {self._data_record()}"
            )
        self.bar = bar = tqdm(
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
        self._call("on_fit_start")
        try:
            with sigterm_interrupts():
                self._loop(bar, start)
        except BaseException as err:
            bar.close()
            self.lock.release()
            self.heartbeat = None  # a later save() (by a caller) must not mark the run running again
            if self.dist.is_main:
                write_status(
                    self.run_dir,
                    "interrupted" if isinstance(err, KeyboardInterrupt) else "failed",
                    step=self.step,
                    epoch=self.epoch,
                    error=str(err),
                    **self.runtime_record(),  # an interrupted run's report still says how it trained
                )
            raise
        bar.close()
        self.lock.release()
        self.heartbeat = None
        if self.tensorboard is not None:
            self.tensorboard.close()
        if self.dist.is_main:
            write_status(
                self.run_dir,
                "finished",
                step=self.step,
                epoch=self.epoch,
                skipped_steps=self.skipped_steps,
                **self.runtime_record(),
            )
        self.method.eval()
        self._call("on_fit_end")
        last = next((r for r in reversed(self.log.read()) if "loss" in r), {}) if self.dist.is_main else {}
        loss = f", last loss {last['loss']:.4f}" if isinstance(last.get("loss"), float) else ""
        self.echo(
            f"finished {self.run_dir}: step {self.step}{loss}; checkpoints in {self.run_dir / 'checkpoints'}; "
            f"next: probssl eval {self.run_dir}"
        )
        return self.method

    def _epoch_steps(self, bar, indices: list[torch.Tensor], batches) -> None:
        """The remaining steps of this epoch (or until total_steps): one per index batch, with its images."""
        t = self.config.train
        tic, seen = time.perf_counter(), 0
        for b, (index, images) in enumerate(zip(indices, batches), start=self.batch_in_epoch):
            stats = self.train_step(index, images)
            self.step += 1
            self.batch_in_epoch = b + 1
            seen += self.batch_size
            rate = seen / max(time.perf_counter() - tic, 1e-9)
            bar.update(1)
            self._call("on_step_end", stats)
            if stats is not None and (self.step % t.log_every == 0 or self.step == self.total_steps):
                bar.set_postfix(loss=f"{stats['loss']:.4f}", img_s=f"{rate:.0f}", **self.bar_extra, refresh=False)
                self._log(stats, rate)
            if self.step >= self.total_steps:
                return
            if t.checkpoint_every_steps > 0 and self.step % t.checkpoint_every_steps == 0:
                self.save()
            self._heartbeat()  # throttled: one clock read per step, a write every few seconds

    def _loop(self, bar, start: int) -> None:
        """Epochs of steps until total_steps; checkpoints on the configured cadence."""
        t = self.config.train
        while self.step < self.total_steps:
            indices = self._epoch_batches(start)
            with contextlib.closing(
                training_batches(self.images, indices, self.device, self.config.data.loader_workers)
            ) as batches:  # closing: a streaming loader's workers stop when the epoch does (last step, an error)
                self._epoch_steps(bar, indices, batches)
            if self.batch_in_epoch >= self.steps_per_epoch:
                self.epoch += 1
                self.batch_in_epoch = 0
                self._call("on_epoch_end")
            finished = self.step >= self.total_steps
            if finished:
                self.method.on_train_end(self.images)  # e.g. fit an epistemic density, before the final checkpoint
            if finished or (t.checkpoint_every > 0 and self.epoch % t.checkpoint_every == 0):
                self.save()


def _named_checkpoint(folder: Path, name: str) -> Path:
    """``step-N`` (any zero padding) or a path -> the checkpoint folder; a clear error listing the ones there."""
    if Path(name).is_dir():
        return Path(name)
    if name.startswith("step-") and name[5:].isdigit():
        candidate = folder / f"step-{int(name[5:]):08d}"
        if candidate.is_dir():
            return candidate
    available = sorted(p.name for p in folder.glob("step-*")) if folder.is_dir() else []
    raise CheckpointError(f"no checkpoint {name!r} in {folder}; available: {', '.join(available) or 'none'}.")


def _tensorboard_writer(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise TrainingError(
            "train.tensorboard=true needs the tensorboard package: "
            "pip install tensorboard (or pip install 'probssl[tensorboard]')."
        ) from None
    return SummaryWriter(str(folder))


def load_run(
    run_dir: str | Path,
    device: str | torch.device = "cpu",
    backbone: torch.nn.Module | None = None,
    checkpoint: str | None = None,
) -> tuple[Config, Method, TrainingState]:
    """Rebuild a trained method from the latest checkpoint of ``run_dir``.

    backbone: an instance of the architecture the run trained, for runs trained with ``Trainer(backbone=...)``
    (a registered or ``package.module:callable`` backbone is rebuilt from the config without it).
    checkpoint: a checkpoint of the run (``step-N`` or ``step-00000N``, or a path) instead of the latest.
    """
    folder = Path(run_dir) / "checkpoints"
    if not Path(run_dir).is_dir():
        raise CheckpointError(f"{run_dir}: no such run folder.")
    path = latest_checkpoint(folder) if checkpoint is None else _named_checkpoint(folder, checkpoint)
    if path is None:
        raise CheckpointError(f"{run_dir} has no checkpoint (expected {folder}/step-*/).")
    state = load_checkpoint(path, map_location="cpu")
    config = from_dict(state.config, migrate=True)
    if "image_shape" not in state.extra:
        raise CheckpointError(f"{path}/state.json has no extra.image_shape; {DAMAGED}")
    method = create_method(config, tuple(state.extra["image_shape"]), backbone=backbone)
    method.match_state(state.model)
    load_weights(method, state.model, path)
    return config, method.to(device).eval(), state
