"""Fixtures shared by the report tests."""

import copy
import json
import shutil
from pathlib import Path

import pytest
import torch

from probssl.config import load_config
from probssl.evaluation import EvalOptions, evaluate_method
from probssl.methods import create_method
from probssl.train import load_splits


@pytest.fixture(scope="session")
def real_eval(tmp_path_factory):
    """eval.json of an untrained VSimCLR with every section, in a fake run directory (no training needed)."""
    root = tmp_path_factory.mktemp("real")
    config = load_config("vsimclr-digits", overrides=["data.train_subset=200"])
    splits = load_splits(config)
    torch.manual_seed(0)
    method = create_method(config, splits.image_shape)
    opts = EvalOptions(
        ood=("noise", "vflip"),
        corruption_samples=40,
        style_train_samples=150,
        style_test_samples=100,
        map_samples=100,
        mc_samples=4,
        alignment_samples=100,
        mlp=False,
        compression_curve=True,
    )
    m = evaluate_method(method, splits, opts, config=config, image_dir=root / "run0" / "eval_images")
    m["images"] = {k: str(Path(v).relative_to(root / "run0")) for k, v in m["images"].items()}
    runs = []
    for seed in (0, 1):  # the same numbers under two seeds of one config: one group, s.e. 0
        run = root / f"run{seed}"
        if seed:
            shutil.copytree(root / "run0" / "eval_images", run / "eval_images")
        m["run"], m["config"] = {"method": "vsimclr", "seed": seed}, copy.deepcopy(config.to_dict())
        m["config"]["train"]["seed"] = seed
        (run / "eval.json").write_text(json.dumps(m))
        (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 5.0 - s}) + "\n" for s in range(4)))
        runs.append(run)
    return runs
