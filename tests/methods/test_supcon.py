import json
import math

import pytest
import torch

from probssl.config import load_config, load_preset
from probssl.distributions import PointMass
from probssl.methods import SimCLR, create_method
from probssl.methods.supcon import SupCon
from probssl.models import ProjectionHead, create_backbone
from probssl.train import Trainer

QUICK = [
    "train.epochs=6",
    "train.batch_size=64",
    "data.train_subset=256",
    "train.progress=false",
    "train.log_every=1",
    "train.warmup_epochs=1",
]
PRESETS = ["supcon-digits", "supcon-mnist", "supcon-fashion-mnist"]


def epoch_mean_losses(run_dir):
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    records = [r for r in records if "loss" in r]  # training records (the online monitors log their own)
    by_epoch: dict[int, list[float]] = {}
    for r in records:
        by_epoch.setdefault(r["epoch"], []).append(r["loss"])
    return [sum(v) / len(v) for _, v in sorted(by_epoch.items())]


def _pair(temperature=0.3):
    torch.manual_seed(0)
    backbone = create_backbone("convnet", in_channels=1, image_size=8)
    head = ProjectionHead(backbone.feature_dim, 32, 16)
    return SimCLR(backbone, head, temperature).eval(), SupCon(backbone, head, temperature).eval()


@pytest.mark.parametrize("views", [2, 3])
def test_distinct_labels_reduce_supcon_to_simclr(views):
    simclr, supcon = _pair()
    x = torch.rand(views, 12, 1, 8, 8)
    a, b = simclr(x), supcon(x, torch.arange(12))
    assert set(b) == {"supcon"}
    assert b["supcon"].item() == pytest.approx(a["nt_xent"].item(), rel=1e-5)


def test_class_positives_change_the_loss_and_match_a_loop_oracle():
    _, method = _pair(temperature=0.5)
    x, labels = torch.rand(2, 6, 1, 8, 8), torch.tensor([0, 1, 0, 2, 1, 0])
    with torch.no_grad():
        z = method.forward_head(method.encode_views(x)).reshape(12, -1).double()
    y = labels.repeat(2)
    total = 0.0
    for i in range(12):
        positives = [p for p in range(12) if p != i and y[p] == y[i]]
        log_denominator = math.log(sum(math.exp(float(z[i] @ z[a]) / 0.5) for a in range(12) if a != i))
        total += -sum(float(z[i] @ z[p]) / 0.5 - log_denominator for p in positives) / len(positives)
    assert method(x, labels)["supcon"].item() == pytest.approx(total / 12, rel=1e-5)


def test_labels_are_required():
    _, method = _pair()
    assert SupCon.supervised
    with pytest.raises(ValueError, match="supervised"):
        method(torch.rand(2, 4, 1, 8, 8))


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_load_and_build(preset):
    config = load_preset(preset)
    assert config.method.name == "supcon" and config.method.temperature == 0.1
    shape = (1, 8, 8) if preset.endswith("digits") else (1, 28, 28)
    method = create_method(config, shape)
    assert isinstance(method, SupCon)
    method.eval()
    q = method.posterior(torch.rand(3, *shape))
    assert isinstance(q, PointMass) and torch.allclose(q.mean.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_trains_on_digits_with_finite_decreasing_loss(tmp_path):
    Trainer(load_config("supcon-digits", overrides=QUICK), tmp_path / "run").fit()
    losses = epoch_mean_losses(tmp_path / "run")
    assert len(losses) == 6 and all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]
