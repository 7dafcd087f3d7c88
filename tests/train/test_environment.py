"""Every run folder says what produced it: environment.json and status.json's precision / compile reasons."""

import json
import subprocess
import sys
from pathlib import Path

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
    assert status["channels_last_reason"].startswith("auto: convolutions on CPU -> NHWC") and status["channels_last"]
    assert env["runtime"]["channels_last_reason"] == status["channels_last_reason"]
    if Path("/proc/cpuinfo").exists():  # every flag, not only the bf16 ones
        assert set(env["cpu"]["flags"]) <= set(env["cpu"]["all_flags"]) and len(env["cpu"]["all_flags"]) > 5
    commit = env["git_commit"]
    if (Path(probssl.__file__).parents[1] / ".git").exists():  # run from a checkout: HEAD, +dirty if edited
        head = subprocess.run(
            ["git", "-C", str(Path(probssl.__file__).parents[1]), "rev-parse", "HEAD"], capture_output=True, text=True
        )
        assert commit.removesuffix("+dirty") == head.stdout.strip()


def test_channels_last_reason_says_what_decided():
    import torch

    from probssl.train.device import choose_channels_last

    conv, mlp = torch.nn.Conv2d(1, 4, 3), torch.nn.Linear(4, 4)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    cases = [
        (True, mlp, cpu, "fp32", "model.channels_last=true (set)"),
        (None, mlp, cpu, "fp32", "auto: no 2-D convolutions"),
        (None, conv, cpu, "bf16", "auto: convolutions on CPU -> NHWC"),
        (None, conv, cuda, "bf16", "auto: convolutions on cuda under bf16 -> NHWC"),
        (None, conv, cuda, "fp32", "auto: cuda fp32 -> NCHW"),
    ]
    for setting, model, device, precision, reason in cases:
        nhwc, why = choose_channels_last(setting, model, device, precision)
        assert why.startswith(reason)
        assert ("NHWC" in reason or reason.endswith("true (set)")) == nhwc


def test_version_flag():
    out = subprocess.run([sys.executable, "-m", "probssl", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"probssl {probssl.__version__}"


def test_a_resumed_run_keeps_the_earlier_sessions_environment(tmp_path):
    run = tmp_path / "run"
    base = ["train.progress=false", "train.epochs=1", "data.train_subset=256", "train.batch_size=64"]
    Trainer(load_config("simclr-digits", overrides=base), run).fit()
    first = json.loads((run / "environment.json").read_text())
    assert "previous" not in first
    Trainer(load_config("simclr-digits", overrides=[*base[:1], "train.epochs=2", *base[2:]]), run, resume="auto").fit()
    second = json.loads((run / "environment.json").read_text())
    assert second["resumed_from_step"] == 4 and second["previous"] == [first]
    Trainer(load_config("simclr-digits", overrides=[*base[:1], "train.epochs=3", *base[2:]]), run, resume="auto").fit()
    third = json.loads((run / "environment.json").read_text())
    assert [p.get("resumed_from_step") for p in third["previous"]] == [None, 4] and third["resumed_from_step"] == 8
