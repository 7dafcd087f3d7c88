"""Run directories written by probssl 0.1.0 (its flat method schema) still load, evaluate and resume.

tests/fixtures/run-probssl-0.1.0 was written by the 0.1.0 release (commit 41420d2) with
    probssl train --preset vsimclr-digits --set model.width=0.125 --set model.embed_dim=4 \\
        --set model.head_hidden_dim=8 --set train.max_steps=3 --set train.progress=false
Its config.yaml and checkpoint hold all 20 keys of the old shared method section (kl_estimator next to
vicreg_sim, ...). Migration (probssl.config.from_dict(..., migrate=True)) drops the keys that the run's method
does not have; they had no effect then either.
"""

import shutil
from pathlib import Path

import pytest
import torch
import yaml

from probssl.config import LEGACY_METHOD_KEYS, ConfigError, from_dict, load_config
from probssl.evaluation import evaluate_run
from probssl.methods.vsimclr import VSimCLRConfig
from probssl.train import Trainer, load_run

FIXTURE = Path(__file__).parent / "fixtures" / "run-probssl-0.1.0"
OVERRIDES = [
    "model.width=0.125",
    "model.embed_dim=4",
    "model.head_hidden_dim=8",
    "train.max_steps=3",
    "train.progress=false",
]


@pytest.fixture
def legacy_run(tmp_path):
    return Path(shutil.copytree(FIXTURE, tmp_path / "run"))


def test_the_fixture_really_has_the_flat_schema():
    saved = yaml.safe_load((FIXTURE / "config.yaml").read_text())
    assert set(saved["method"]) - {"name"} == LEGACY_METHOD_KEYS
    with pytest.raises(ConfigError, match="Unknown config key 'method.latent' of method 'vsimclr'"):
        from_dict(saved)  # strict: a user's file with another method's key is an error
    migrated = from_dict(saved, migrate=True)
    assert type(migrated.method) is VSimCLRConfig and migrated.method.kl_estimator == "scaled-bound"


def test_load_run_and_evaluate(legacy_run):
    config, method, state = load_run(legacy_run)
    assert state.step == 3 and config.model.width == 0.125
    assert method.represent(torch.rand(2, 1, 8, 8)).shape[0] == 2
    metrics = evaluate_run(legacy_run, mode="quick", ood=[])
    assert 0 <= metrics["linear_acc"] <= 1


def test_resume_with_the_same_command_is_accepted(legacy_run):
    config = load_config("vsimclr-digits", overrides=OVERRIDES)
    trainer = Trainer(config, legacy_run, resume="auto")
    assert trainer.step == 3  # the 0.1.0 checkpoint was restored: its config has the same identity
    trainer.fit()
