"""A hand-edited checkpoint that still hashes consistently (issue 17): a user who edits state.json and re-hashes it,
or a structurally wrong file written by a bug. The loader checks the structure itself, so `--resume auto` and
`probssl eval` give one clear line naming the checkpoint, never a KeyError / TypeError / size-mismatch traceback,
and no file of the run changes. Also the smallest possible training set, evaluated."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from probssl.cli.main import main
from probssl.config import load_config
from probssl.train import Trainer, latest_checkpoint

SMALL = ["train.epochs=1", "data.train_subset=256", "train.batch_size=32", "train.progress=false"]
SET_SMALL = [arg for item in SMALL for arg in ("--set", item)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("trained") / "run"
    Trainer(load_config("simclr-digits", overrides=SMALL), run).fit()
    return run


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _edit(ckpt: Path, edit_meta=None, edit_tensors=None) -> None:
    """Apply the edits and re-hash both files, as a careful user (or a buggy writer) would."""
    meta = json.loads((ckpt / "state.json").read_text())
    if edit_tensors is not None:
        tensors = load_file(str(ckpt / "tensors.safetensors"))
        edit_tensors(tensors)
        save_file(tensors, str(ckpt / "tensors.safetensors"))
        meta["sha256"] = _sha256(ckpt / "tensors.safetensors")
    if edit_meta is not None:
        meta = edit_meta(meta)
    (ckpt / "state.json").write_text(json.dumps(meta))
    (ckpt / "state.json.sha256").write_text(_sha256(ckpt / "state.json") + "\n")


def _drop(key):
    def edit(meta):
        del meta[key]
        return meta

    return edit


def _set(path, value):
    def edit(meta):
        target = meta
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
        return meta

    return edit


def _move_param(meta):
    groups = meta["optimizer"]["param_groups"]
    groups[1]["params"].append(groups[0]["params"].pop())
    return meta


def _drop_group(meta):
    meta["optimizer"]["param_groups"].pop()
    return meta


def _drop_lr(meta):
    del meta["optimizer"]["param_groups"][0]["lr"]
    return meta


def _reshape_weight(tensors):
    name = next(k for k, v in tensors.items() if k.startswith("model/") and v.dim() == 4)
    tensors[name] = torch.zeros(3, *tensors[name].shape[1:])


def _reshape_moment(tensors):
    name = next(k for k, v in tensors.items() if k.startswith("optim/") and k.endswith("exp_avg") and v.dim() == 4)
    tensors[name] = torch.zeros(3, *tensors[name].shape[1:])


def _drop_rng(tensors):
    del tensors["rng/order"]


# (edit of state.json, edit of the tensors, words the one line must hold)
CASES = {
    "missing epoch": (_drop("epoch"), None, ["'epoch' must be a count"]),
    "missing config": (_drop("config"), None, ["different config"]),
    "step is text": (_set(["step"], "ten"), None, ["'step' must be a count"]),
    "a list instead of an object": (lambda meta: [meta], None, ["holds a JSON list, not an object"]),
    "extra is a list": (_set(["extra"], [1, 2]), None, ["'extra' must be an object"]),
    "optimizer groups not a list": (_set(["optimizer", "param_groups"], {"0": 1}), None, ["param_groups"]),
    "a parameter moved between groups": (_move_param, None, ["optimiser state does not fit"]),
    "a group dropped": (_drop_group, None, ["optimiser state does not fit"]),
    "a group without lr": (_drop_lr, None, ["optimiser group 0 has lr = None"]),
    "a group with a text weight decay": (
        _set(["optimizer", "param_groups", 0, "weight_decay"], "big"),
        None,
        ["optimiser group 0 has weight_decay = 'big'"],
    ),
    "a weight of another shape": (None, _reshape_weight, ["weights do not fit the model", "size mismatch"]),
    "a moment of another shape": (None, _reshape_moment, ["optimiser state 'exp_avg' has shape [3,"]),
    "no data-order RNG": (None, _drop_rng, ["data-order RNG state is missing"]),
    "a step past the budget": (_set(["step"], 99999), None, ["past this config's budget", "train.epochs"]),
}


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", list(CASES))
def test_an_edited_and_rehashed_checkpoint_is_one_clear_error_on_resume(trained, tmp_path, capsys, case):
    edit_meta, edit_tensors, needles = CASES[case]
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    ckpt = latest_checkpoint(run / "checkpoints")
    _edit(ckpt, edit_meta, edit_tensors)
    before = _tree(run)
    code = main(["train", "--preset", "simclr-digits", "--out", str(run), "--resume", "auto", *SET_SMALL])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err and err.count("\n") == 0 and err.startswith("probssl: error: "), err
    assert str(ckpt) in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    assert _tree(run) == before  # nothing of the run changed


@pytest.mark.parametrize("case", ["a list instead of an object", "missing epoch", "a weight of another shape"])
def test_an_edited_and_rehashed_checkpoint_is_one_clear_error_on_eval(trained, tmp_path, capsys, case):
    edit_meta, edit_tensors, needles = CASES[case]
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    ckpt = latest_checkpoint(run / "checkpoints")
    _edit(ckpt, edit_meta, edit_tensors)
    assert main(["eval", str(run), "--quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and err.count("\n") == 0 and str(ckpt) in err, err
    assert needles[0] in err, err
    assert not (run / "eval.json").exists()


def test_an_edited_checkpoint_from_the_real_command_line(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    _edit(latest_checkpoint(run / "checkpoints"), None, _reshape_weight)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "probssl", "train", "--preset", "simclr-digits", "--out", str(run), "--resume", "auto"]
        + SET_SMALL,
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().count("\n") == 0 and "weights do not fit the model" in result.stderr


def test_eval_of_a_run_on_the_smallest_training_set_is_one_clear_message(tmp_path):
    """Two training images (the least a batch can hold): no within-class spread to fit the evaluation on."""
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cli = [sys.executable, "-m", "probssl"]
    train = [*cli, "train", "--preset", "simclr-digits", "--out", str(run), "--set", "data.train_subset=2"]
    train += ["--set", "train.epochs=1", "--set", "train.progress=false"]
    assert subprocess.run(train, capture_output=True, env=env).returncode == 0
    result = subprocess.run([*cli, "eval", str(run), "--quick"], capture_output=True, text=True, env=env)
    assert result.returncode == 2, result.stderr
    err = result.stderr.strip()
    assert "Traceback" not in err and err.count("\n") == 0, err
    assert "2 image(s)" in err and "data.train_subset=2" in err and "larger training set" in err, err
    assert not (run / "eval.json").exists()
