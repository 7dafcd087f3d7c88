import json
import math

import pytest
import torch

from probssl.config import load_config, load_preset
from probssl.distributions import ProjectedNormal
from probssl.methods import VSimCLR, create_method
from probssl.methods.supcon import SupCon
from probssl.methods.vsupcon import VSupCon
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
PRESETS = ["vsupcon-digits", "vsupcon-mnist", "vsupcon-fashion-mnist"]


@pytest.mark.parametrize("views", [2, 3])
def test_vanishing_sigma_and_no_kl_equals_supcon(views, deterministic_gaussian_head):
    backbone = create_backbone("convnet", in_channels=1, image_size=8)
    proj = ProjectionHead(backbone.feature_dim, 32, 16)
    supcon = SupCon(backbone, proj, temperature=0.2).eval()
    vsupcon = VSupCon(backbone, deterministic_gaussian_head(proj), temperature=0.2, beta=0.0).eval()
    x, labels = torch.rand(views, 12, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2, 3, 3, 0, 1, 4, 5])
    a, b = supcon(x, labels), vsupcon(x, labels)
    assert set(b) == {"supcon"}
    assert b["supcon"].item() == pytest.approx(a["supcon"].item(), rel=1e-5)


def test_is_vsimclr_with_supcon_and_the_same_kl():
    config = load_config("vsupcon-digits", overrides=["method.beta=0.5"])
    method = create_method(config, (1, 8, 8)).eval()
    assert isinstance(method, VSimCLR) and VSupCon.supervised and VSupCon.probabilistic
    assert (method.beta, method.kl_estimator, method.kl_normalize) == (0.5, "scaled-bound", True)
    x = torch.rand(2, 10, 1, 8, 8)
    torch.manual_seed(1)
    terms = method(x, torch.arange(10) % 3)
    torch.manual_seed(1)
    twin = VSimCLR(method.backbone, method.head, temperature=0.1, beta=0.5).eval()
    reference = twin(x)  # same modules and RNG: same samples, same KL
    assert list(terms) == ["supcon", "kl"]
    assert terms["kl"].item() == pytest.approx(reference["kl"].item(), rel=1e-6) and terms["kl"] > 0
    torch.manual_seed(1)
    instance = method(x, torch.arange(10))  # distinct labels: SupCon is the NT-Xent of VSimCLR
    assert instance["supcon"].item() == pytest.approx(reference["nt_xent"].item(), rel=1e-5)


def test_labels_are_required():
    method = create_method(load_preset("vsupcon-digits"), (1, 8, 8))
    with pytest.raises(ValueError, match="supervised"):
        method(torch.rand(2, 4, 1, 8, 8))


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_load_and_build(preset):
    config = load_preset(preset)
    assert config.method.name == "vsupcon" and config.method.temperature == 0.1
    shape = (1, 8, 8) if preset.endswith("digits") else (1, 28, 28)
    method = create_method(config, shape).eval()
    q = method.posterior(torch.rand(3, *shape))
    assert isinstance(q, ProjectedNormal) and (q.uncertainty("angular_spread") > 0).all()


def test_trains_on_digits_with_finite_decreasing_loss(tmp_path):
    Trainer(load_config("vsupcon-digits", overrides=QUICK), tmp_path / "run").fit()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    records = [r for r in records if "loss" in r]  # training records (the online monitors log their own)
    assert {"supcon", "kl"} <= set(records[0])
    first = [r["loss"] for r in records if r["epoch"] == 1]  # epochs are numbered from 1 in metrics.jsonl
    last = [r["loss"] for r in records if r["epoch"] == 6]
    assert all(math.isfinite(r["loss"]) for r in records)
    assert sum(last) / len(last) < sum(first) / len(first)
