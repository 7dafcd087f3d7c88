import json
import math
from itertools import combinations

import pytest
import torch

from probssl.config import load_config, load_preset
from probssl.distributions import PointMass
from probssl.losses.vicreg import vicreg_loss
from probssl.methods import create_method
from probssl.methods.vicreg import VICReg
from probssl.models import ProjectionHead
from probssl.train import Trainer

QUICK = [
    "train.epochs=6",
    "train.batch_size=64",
    "data.train_subset=256",
    "train.progress=false",
    "train.log_every=1",
    "train.warmup_epochs=1",
]
PRESETS = ["vicreg-digits", "vicreg-mnist", "vicreg-fashion-mnist"]


def _method(*overrides):
    return create_method(load_config("vicreg-digits", overrides=list(overrides)), (1, 8, 8)).eval()


def test_expander_has_three_layers_and_weighted_terms_follow_the_config():
    method = _method("method.vicreg_sim=2.0", "method.vicreg_std=3.0", "method.vicreg_cov=0.5")
    assert isinstance(method.expander, ProjectionHead)
    assert sum(isinstance(m, torch.nn.Linear) for m in method.expander.modules()) == 3
    x = torch.rand(2, 16, 1, 8, 8)
    terms = method(x)
    z = method.forward_head(method.encode_views(x))
    want = vicreg_loss(z[0], z[1], sim=2.0, std=3.0, cov=0.5)
    assert list(terms) == ["invariance", "variance", "covariance"]
    for key in want:
        assert terms[key].item() == pytest.approx(want[key].item(), rel=1e-6)


def test_more_views_average_over_view_pairs():
    method = _method()
    x = torch.rand(3, 16, 1, 8, 8)
    terms = method(x)
    z = method.forward_head(method.encode_views(x))
    per_pair = [vicreg_loss(z[i], z[j]) for i, j in combinations(range(3), 2)]
    for key in terms:
        assert terms[key].item() == pytest.approx(sum(p[key].item() for p in per_pair) / 3, rel=1e-5)


def test_identical_views_have_no_invariance_term():
    method = _method()
    x = torch.rand(1, 16, 1, 8, 8).expand(2, -1, -1, -1, -1)
    assert method(x)["invariance"].item() == pytest.approx(0.0, abs=1e-10)


def test_posterior_is_the_unnormalised_embedding_and_gradients_flow():
    method = _method()
    x = torch.rand(5, 1, 8, 8)
    q = method.posterior(x)
    assert isinstance(q, PointMass) and q.event_shape == (512,)
    assert torch.equal(q.mean, method.expander(method.forward_features(x)))
    assert not torch.allclose(q.mean.norm(dim=-1), torch.ones(5))
    assert method.default_representation == "backbone" and not VICReg.supervised and not VICReg.probabilistic
    method.train()
    sum(method(torch.rand(2, 16, 1, 8, 8)).values()).backward()
    assert all(p.grad is not None for p in method.parameters())


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_load_and_build(preset):
    config = load_preset(preset)
    assert config.method.name == "vicreg" and config.model.head_layers == 3
    assert (config.method.vicreg_sim, config.method.vicreg_std, config.method.vicreg_cov) == (25.0, 25.0, 1.0)
    shape = (1, 8, 8) if preset.endswith("digits") else (1, 28, 28)
    method = create_method(config, shape)
    assert isinstance(method, VICReg)
    assert all(torch.isfinite(t) for t in method(torch.rand(2, 4, *shape)).values())


def test_trains_on_digits_with_finite_decreasing_loss(tmp_path):
    Trainer(load_config("vicreg-digits", overrides=QUICK), tmp_path / "run").fit()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    records = [r for r in records if "loss" in r]  # training records (the online monitors log their own)
    first = [r["loss"] for r in records if r["epoch"] == 1]  # epochs are numbered from 1 in metrics.jsonl
    last = [r["loss"] for r in records if r["epoch"] == 6]
    assert len(records) == 24 and all(math.isfinite(r["loss"]) for r in records)
    assert {"invariance", "variance", "covariance"} <= set(records[0])
    assert sum(last) / len(last) < sum(first) / len(first)
