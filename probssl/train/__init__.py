"""Training: one loop for every method, optimisers, schedules, checkpoints and run logs."""

from probssl.data import load_splits, to_float_images  # re-exported: they lived here in probssl <= 0.1
from probssl.train.callbacks import Callback
from probssl.train.checkpoint import (
    CheckpointError,
    TrainingState,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from probssl.train.device import autocast, resolve_precision, select_device, use_channels_last
from probssl.train.distributed import teardown_distributed
from probssl.train.logging import MetricsLog, list_runs, read_status, stale_evaluation, write_status
from probssl.train.optim import LARS, OPTIMIZERS, build_optimizer, match_state_layout, warmup_cosine
from probssl.train.trainer import (
    Trainer,
    TrainingError,
    build_augmenter,
    check_config,
    load_run,
    run_identity,
)

__all__ = [
    "Callback",
    "CheckpointError",
    "LARS",
    "MetricsLog",
    "OPTIMIZERS",
    "Trainer",
    "TrainingError",
    "TrainingState",
    "autocast",
    "build_augmenter",
    "build_optimizer",
    "check_config",
    "latest_checkpoint",
    "list_checkpoints",
    "list_runs",
    "load_checkpoint",
    "load_run",
    "load_splits",
    "match_state_layout",
    "read_status",
    "resolve_precision",
    "run_identity",
    "save_checkpoint",
    "select_device",
    "stale_evaluation",
    "teardown_distributed",
    "to_float_images",
    "use_channels_last",
    "warmup_cosine",
    "write_status",
]
