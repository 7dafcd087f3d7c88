"""A user's backbone given as package.module:callable with model.backbone_args, from this one file without
editing probssl/: `probssl train` and `probssl eval` run as two separate processes and rebuild it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

from probssl.config import load_config
from probssl.methods import create_method


class TinyMLP(nn.Module):
    """Flatten -> Linear -> ReLU; no feature_dim attribute: probssl finds it with one dry forward."""

    def __init__(self, hidden: int = 32, image_pixels: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(image_pixels, hidden), nn.ReLU())

    def forward(self, x):
        return self.net(x)


def tiny_mlp(hidden: int = 32, in_channels: int = 1, image_size: int = 8) -> nn.Module:
    return TinyMLP(hidden, in_channels * image_size * image_size)


HERE = Path(__file__).resolve().parent
BACKBONE = f"{Path(__file__).stem}:tiny_mlp"


def _probssl(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "probssl", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_in_process_the_factory_gets_backbone_args_and_a_feature_dim(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    overrides = [f"model.backbone={BACKBONE}", "model.backbone_args={hidden: 24}", "model.width=null"]
    config = load_config("simclr-digits", overrides=overrides)
    method = create_method(config, (1, 8, 8))
    assert type(method.backbone).__name__ == "TinyMLP" and method.backbone.feature_dim == 24  # found by a dry forward
    assert method.represent(torch.rand(2, 1, 8, 8)).shape == (2, 24)


def test_train_and_eval_in_separate_processes(tmp_path):
    run = tmp_path / "run"
    overrides = [
        f"model.backbone={BACKBONE}",
        "model.backbone_args={hidden: 24}",
        "model.width=null",  # the digits preset's convnet width does not apply to this backbone
        "train.epochs=1",
        "data.train_subset=256",
        "train.progress=false",
    ]
    sets = [arg for o in overrides for arg in ("--set", o)]
    trained = _probssl("train", "--preset", "simclr-digits", "--out", str(run), *sets)
    assert trained.returncode == 0, trained.stderr
    assert "backbone_args:\n    hidden: 24" in (run / "config.yaml").read_text()
    evaluated = _probssl("eval", str(run), "--quick", "--ood")
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads((run / "eval.json").read_text())
    assert metrics["representation"]["dim"] == 24 and 0 < metrics["linear_acc"] <= 1


def test_an_option_the_factory_does_not_take_names_the_fix(tmp_path):
    result = _probssl(
        "train", "--preset", "simclr-digits", "--out", str(tmp_path / "r"), "--set", f"model.backbone={BACKBONE}"
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "model.width does not apply" in result.stderr and "model.width=null" in result.stderr


def test_a_missing_module_is_one_clear_error(tmp_path):
    result = _probssl(
        "train",
        "--preset",
        "simclr-digits",
        "--out",
        str(tmp_path / "r"),
        "--set",
        "model.backbone=no_such_module_xyz:net",
        "--set",
        "train.epochs=1",
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "cannot import module 'no_such_module_xyz'" in result.stderr and "PYTHONPATH" in result.stderr
