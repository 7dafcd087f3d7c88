"""Every run folder says what produced it: environment.json and status.json's precision / compile reasons."""

import json
import subprocess
import sys

import probssl
from probssl.config import load_config
from probssl.train import Trainer


def test_a_run_records_its_environment_and_runtime_choices(tmp_path):
    config = load_config("simclr-digits", overrides=["train.max_steps=2", "train.progress=false"])
    Trainer(config, tmp_path / "run").fit()
    env = json.loads((tmp_path / "run" / "environment.json").read_text())
    assert env["probssl"] == probssl.__version__ and env["torch"] and env["python"]
    assert env["cpu"]["cores"] >= 1 and "native_bf16" in env["cpu"]
    assert "torch" in env["packages"] and env["runtime"]["precision"] in ("fp32", "bf16", "fp16")
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["status"] == "finished" and status["precision_reason"] and status["compile_reason"]
    assert isinstance(status["channels_last"], bool) and status["pid"] > 0


def test_version_flag():
    out = subprocess.run([sys.executable, "-m", "probssl", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"probssl {probssl.__version__}"
