"""Checkpoints as safetensors + JSON: no pickle, so loading one never runs code.

Layout: ``RUN/checkpoints/step-00000120/{tensors.safetensors, state.json}``. Each checkpoint is
written into a temporary folder and renamed into place, so a crash leaves either the complete
checkpoint or none. ``state.json`` records the SHA-256 of the tensor file, which turns a
truncated or tampered file into a clear :class:`CheckpointError` instead of a crash.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
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


def _file_mode() -> int:
    """The mode of a new ordinary file under this process's umask (0644 under the usual 022): safetensors writes
    its file 0600, and a checkpoint should be as readable as the run's other files."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def save_checkpoint(directory: str | Path, state: TrainingState, keep: int = 2) -> Path:
    """Write ``state`` atomically under ``directory`` and keep only the newest ``keep``.

    A write that fails (a full disk, a read-only folder) removes its temporary folder and raises
    :class:`CheckpointError` naming the cause; the earlier checkpoints are untouched.
    """
    directory = Path(directory)
    final = directory / f"step-{state.step:08d}"
    tmp = directory / f".tmp-step-{state.step:08d}-{os.getpid()}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        _write_checkpoint(tmp, state)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except (OSError, SafetensorError) as err:  # safetensors reports a failed write as SafetensorError
        shutil.rmtree(tmp, ignore_errors=True)  # frees the space the partial write took
        kept = [p.name for p in list_checkpoints(directory)]
        code = err.errno if isinstance(err, OSError) else _os_error_code(str(err))
        cause = (err.strerror if isinstance(err, OSError) else None) or (os.strerror(code) if code else str(err))
        hint = {errno.ENOSPC: "free some disk space", errno.EROFS: "the folder is read-only"}.get(code, "")
        raise CheckpointError(
            f"could not write checkpoint {final.name} into {directory}: {cause}"
            f"{f' ({hint})' if hint else ''}. Kept: {', '.join(kept) or 'no earlier checkpoint'}; "
            "fix that, then continue with the same command plus --resume auto."
        ) from None
    for old in list_checkpoints(directory)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _os_error_code(message: str) -> int | None:
    """The errno in a safetensors write error ('... No space left on device (os error 28)'), if any."""
    match = re.search(r"os error (\d+)", message)
    return int(match.group(1)) if match else None


def _write_checkpoint(folder: Path, state: TrainingState) -> None:
    """tensors.safetensors, state.json (with the tensor file's SHA-256) and state.json.sha256 into ``folder``."""
    tensors = {f"model/{k}": v.detach().cpu().contiguous().clone() for k, v in state.model.items()}
    optimizer_meta = None
    if state.optimizer is not None:
        optim_tensors, optimizer_meta = _split_optimizer(state.optimizer)
        tensors.update({k: v.detach().cpu().contiguous().clone() for k, v in optim_tensors.items()})
    tensors.update({f"rng/{k}": v.cpu().contiguous() for k, v in state.rng.items()})
    save_file(tensors, str(folder / TENSORS))
    os.chmod(folder / TENSORS, _file_mode())

    meta = {
        "format": FORMAT,
        "version": VERSION,
        "sha256": _sha256(folder / TENSORS),
        "step": state.step,
        "epoch": state.epoch,
        "batch_in_epoch": state.batch_in_epoch,
        "optimizer": optimizer_meta,
        "config": state.config,
        "extra": state.extra,
    }
    with open(folder / STATE, "w") as f:
        json.dump(meta, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    # state.json's own hash lives beside it: an edited step, optimiser group or config is refused too
    (folder / STATE_HASH).write_text(_sha256(folder / STATE) + "\n")


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Complete checkpoints under ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob("step-*") if (p / STATE).is_file() and (p / TENSORS).is_file())


def latest_checkpoint(directory: str | Path) -> Path | None:
    found = list_checkpoints(directory)
    return found[-1] if found else None


def latest_checkpoint_step(directory: str | Path) -> int | None:
    """The step of :func:`latest_checkpoint`, or None without one; read from the folder name, not state.json, so
    listing many runs (``probssl runs``) opens no checkpoint."""
    latest = latest_checkpoint(directory)
    digits = latest.name[len("step-") :] if latest is not None else ""
    return int(digits) if digits.isdigit() else None


DAMAGED = "the checkpoint was edited or written by other code: use an earlier checkpoint, or retrain."


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_meta(meta: dict, state_file: Path) -> None:
    """The structure of state.json, key by key: a hand-edited file that still hashes consistently (edited and
    re-hashed, or written by a bug) is one clear :class:`CheckpointError` naming the key, never a KeyError or
    TypeError later."""
    problems = [f"{key!r} must be a count >= 0" for key in ("step", "epoch") if not _is_count(meta.get(key))]
    if not _is_count(meta.get("batch_in_epoch", 0)):
        problems.append("'batch_in_epoch' must be a count >= 0")
    if not isinstance(meta.get("sha256"), str):
        problems.append("'sha256' (of the tensor file) is missing")
    problems += [f"{key!r} must be an object" for key in ("config", "extra") if not isinstance(meta.get(key, {}), dict)]
    optimizer = meta.get("optimizer")
    if optimizer is not None:
        groups = optimizer.get("param_groups") if isinstance(optimizer, dict) else None
        scalars = optimizer.get("scalars") if isinstance(optimizer, dict) else None
        if not isinstance(groups, list) or not all(
            isinstance(g, dict) and isinstance(g.get("params"), list) and all(_is_count(i) for i in g["params"])
            for g in groups
        ):
            problems.append("'optimizer.param_groups' must be a list of objects, each with a 'params' list of indices")
        if not isinstance(scalars, dict) or not all(isinstance(v, dict) for v in scalars.values()):
            problems.append("'optimizer.scalars' must be an object of objects")
    shape = meta.get("extra", {}).get("image_shape") if isinstance(meta.get("extra"), dict) else None
    if shape is not None and not (
        isinstance(shape, list) and len(shape) == 3 and all(_is_count(n) and n > 0 for n in shape)
    ):
        problems.append("'extra.image_shape' must be [channels, height, width]")
    if problems:
        raise CheckpointError(f"{state_file}: {'; '.join(problems)}; {DAMAGED}")


def load_weights(module: torch.nn.Module, weights: dict[str, torch.Tensor], path: str | Path) -> None:
    """``module.load_state_dict(weights)`` (strict), with a checkpoint whose names or shapes do not fit the model
    as one clear :class:`CheckpointError` (torch's own message spans many lines)."""
    try:
        module.load_state_dict(weights)
    except RuntimeError as err:
        details = [line.strip() for line in str(err).splitlines()[1:] if line.strip()]
        first = details[0] if details else str(err).splitlines()[0]
        more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
        raise CheckpointError(
            f"{path}: the weights do not fit the model built from the run's config: {first[:300]}{more}; {DAMAGED}"
        ) from None


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
    hash_file = path / STATE_HASH
    if hash_file.is_file() and hash_file.read_text(errors="replace").strip() != _sha256(state_file):
        raise CheckpointError(
            f"{state_file} does not match the SHA-256 in {hash_file.name}: it was modified after it was written "
            "(a hand-edited step or config?). Use an earlier checkpoint, or restore the file."
        )
    if not isinstance(meta, dict):
        raise CheckpointError(f"{state_file} holds a JSON {type(meta).__name__}, not an object; {DAMAGED}")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{state_file} is not a probssl checkpoint (format field is {meta.get('format')!r}).")
    if meta.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {meta.get('version')} is not supported (expected {VERSION})."
        )
    _check_meta(meta, state_file)
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
        optim = {k: v for k, v in tensors.items() if k.startswith("optim/")}
        bad = next((k for k in optim if len(k.split("/", 2)) != 3 or not k.split("/", 2)[1].isdigit()), None)
        if bad is not None or not all(k.isdigit() for k in meta["optimizer"]["scalars"]):
            raise CheckpointError(f"{tensor_file}: optimiser entry {bad!r} is not optim/INDEX/NAME; {DAMAGED}")
        optimizer = _join_optimizer(optim, meta["optimizer"])
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
