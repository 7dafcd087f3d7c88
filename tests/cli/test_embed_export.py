"""probssl embed (one row per image, every column) and probssl export / from_pretrained (plain safetensors)."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import probssl
from probssl.cli.main import main
from probssl.config import load_config
from probssl.models import create_backbone
from probssl.train import Trainer, load_run

TINY = [
    "train.epochs=1",
    "data.train_subset=256",
    "train.batch_size=64",
    "train.progress=false",
    "train.checkpoint_every_steps=2",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run = tmp_path_factory.mktemp("export") / "vsimclr"
    Trainer(load_config("vsimclr-digits", overrides=TINY), run).fit()
    return run


def test_embed_writes_one_row_per_image_with_every_column(run, tmp_path):
    assert main(["embed", str(run), "--out", str(tmp_path / "e.npz")]) == 0
    rows = np.load(tmp_path / "e.npz")
    n = len(rows["index"])
    assert n == 359 and rows["label"].shape == (n,) and rows["knn_prediction"].shape == (n,)
    assert rows["representation"].ndim == 2 and rows["mean_direction"].shape[0] == n
    scores = {k for k in rows.files if k.startswith("uncertainty__")}
    assert {"uncertainty__angular_spread", "uncertainty__log_det_cov", "uncertainty__knn_distance"} <= scores
    assert main(["embed", str(run), "--split", "val", "--out", str(tmp_path / "e.csv")]) == 0
    header = (tmp_path / "e.csv").read_text().splitlines()[0].split(",")
    assert "uncertainty/log_det_cov" in header and "representation_0" in header


def test_export_loads_with_plain_safetensors_into_a_fresh_backbone(run, tmp_path):
    out = tmp_path / "export"
    assert main(["export", str(run), "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"model.safetensors", "head.safetensors", "config.json", "README.md"}
    config, method, _ = load_run(run)
    fresh = create_backbone(config.model.backbone, in_channels=1, image_size=8, width=config.model.width)
    fresh.load_state_dict(load_file(str(out / "model.safetensors")))  # no probssl involved
    x = torch.rand(4, 1, 8, 8)
    fresh.eval()
    torch.testing.assert_close(fresh(x), method.forward_features(x))
    reloaded = probssl.from_pretrained(out)
    torch.testing.assert_close(reloaded.represent(x), method.represent(x))
    torch.testing.assert_close(reloaded.uncertainty(x), method.uncertainty(x))
    card = (out / "README.md").read_text()
    assert "vsimclr" in card and "angular_spread" in card and json.loads((out / "config.json").read_text())["step"] > 0


def test_eval_of_an_earlier_checkpoint(run, capsys):
    assert main(["eval", str(run), "--quick", "--ood", "--checkpoint", "step-2"]) == 0
    assert json.loads((run / "eval.json").read_text())["run"]["step"] == 2
    assert main(["eval", str(run), "--quick", "--ood", "--checkpoint", "step-999"]) == 2
    assert "available: step-" in capsys.readouterr().err
