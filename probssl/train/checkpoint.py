"""Checkpoints as safetensors + JSON: no pickle, so loading one never runs code.

Layout: ``RUN/checkpoints/step-00000120/{tensors.safetensors, state.json}``. Each checkpoint is
written into a temporary folder and renamed into place, so a crash leaves either the complete
checkpoint or none. ``state.json`` records the SHA-256 of the tensor file, which turns a
truncated or tampered file into a clear :class:`CheckpointError` instead of a crash.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

FORMAT = "probssl-checkpoint"
VERSION = 1
TENSORS = "tensors.safetensors"
STATE = "state.json"
STATE_HASH = "state.json.sha256"  # absent in checkpoints of probssl 0.1, which are checked by their tensor hash only


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, truncated, tampered with or of another format."""


@dataclass
class TrainingState:
    """Everything needed to continue a run exactly where it stopped."""

    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None = None
    step: int = 0
    epoch: int = 0  # completed epochs
    batch_in_epoch: int = 0  # batches of the current epoch already done (mid-epoch checkpoints)
    rng: dict[str, torch.Tensor] = field(default_factory=dict)  # generator name -> state
    config: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # JSON-able (e.g. last metrics)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _split_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Optimizer state_dict -> (tensors by flat name, JSON-able rest)."""
    tensors, scalars = {}, {}
    for idx, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim/{idx}/{key}"] = value
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _join_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        _, idx, key = name.split("/", 2)
        state.setdefault(int(idx), {})[key] = value
    for idx, entries in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(entries)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(directory: str | Path, state: TrainingState, keep: int = 2) -> Path:
    """Write ``state`` atomically under ``directory`` and keep only the newest ``keep``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"step-{state.step:08d}"
    tmp = directory / f".tmp-step-{state.step:08d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()

    tensors = {f"model/{k}": v.detach().cpu().contiguous().clone() for k, v in state.model.items()}
    optimizer_meta = None
    if state.optimizer is not None:
        optim_tensors, optimizer_meta = _split_optimizer(state.optimizer)
        tensors.update({k: v.detach().cpu().contiguous().clone() for k, v in optim_tensors.items()})
    tensors.update({f"rng/{k}": v.cpu().contiguous() for k, v in state.rng.items()})
    save_file(tensors, str(tmp / TENSORS))

    meta = {
        "format": FORMAT,
        "version": VERSION,
        "sha256": _sha256(tmp / TENSORS),
        "step": state.step,
        "epoch": state.epoch,
        "batch_in_epoch": state.batch_in_epoch,
        "optimizer": optimizer_meta,
        "config": state.config,
        "extra": state.extra,
    }
    with open(tmp / STATE, "w") as f:
        json.dump(meta, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    # state.json's own hash lives beside it: an edited step, optimiser group or config is refused too
    (tmp / STATE_HASH).write_text(_sha256(tmp / STATE) + "\n")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)

    for old in list_checkpoints(directory)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Complete checkpoints under ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob("step-*") if (p / STATE).is_file() and (p / TENSORS).is_file())


def latest_checkpoint(directory: str | Path) -> Path | None:
    found = list_checkpoints(directory)
    return found[-1] if found else None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> TrainingState:
    """Read a checkpoint folder written by :func:`save_checkpoint` (never unpickles)."""
    path = Path(path)
    state_file, tensor_file = path / STATE, path / TENSORS
    if not state_file.is_file() or not tensor_file.is_file():
        raise CheckpointError(f"{path} is not a probssl checkpoint: expected {STATE} and {TENSORS} inside it.")
    try:
        meta = json.loads(state_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{state_file} is not valid JSON ({err}); the checkpoint is damaged.") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{state_file} is not a probssl checkpoint (format field is {meta.get('format')!r}).")
    hash_file = path / STATE_HASH
    if hash_file.is_file() and hash_file.read_text().strip() != _sha256(state_file):
        raise CheckpointError(
            f"{state_file} does not match the SHA-256 in {hash_file.name}: it was modified after it was written "
            "(a hand-edited step or config?). Use an earlier checkpoint, or restore the file."
        )
    if meta.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {meta.get('version')} is not supported (expected {VERSION})."
        )
    if _sha256(tensor_file) != meta.get("sha256"):
        raise CheckpointError(
            f"{tensor_file} does not match the SHA-256 recorded in {STATE}: the file is truncated or was "
            "modified after it was written. Use an earlier checkpoint or retrain."
        )
    try:
        tensors = load_file(str(tensor_file), device=str(map_location))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{tensor_file} could not be read as safetensors: {err}") from None

    model = {k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")}
    rng = {k[len("rng/") :]: v for k, v in tensors.items() if k.startswith("rng/")}
    optimizer = None
    if meta.get("optimizer") is not None:
        optimizer = _join_optimizer({k: v for k, v in tensors.items() if k.startswith("optim/")}, meta["optimizer"])
    return TrainingState(
        model=model,
        optimizer=optimizer,
        step=meta["step"],
        epoch=meta["epoch"],
        batch_in_epoch=meta.get("batch_in_epoch", 0),
        rng=rng,
        config=meta.get("config", {}),
        extra=meta.get("extra", {}),
    )
