import json
import math

import pytest
import torch
from torch import nn

from probssl.config import load_config, load_preset
from probssl.distributions import DiagonalNormal, StraightThroughBernoulli
from probssl.methods import create_method
from probssl.methods.scl import SCL, compression_ratio
from probssl.models import GaussianParams, ProjectionHead, create_backbone
from probssl.train import Trainer

QUICK = [
    "train.epochs=6",
    "train.batch_size=64",
    "data.train_subset=256",
    "train.progress=false",
    "train.log_every=1",
    "train.warmup_epochs=1",
]
PRESETS = [
    f"scl-{latent}-{data}" for latent in ("gaussian", "bernoulli") for data in ("digits", "mnist", "fashion-mnist")
]


def _method(latent="bernoulli", beta=0.0, **overrides):
    extra = [f"method.latent={latent}", f"method.beta={beta}"] + [f"{k}={v}" for k, v in overrides.items()]
    return create_method(load_config(f"scl-{latent}-digits", overrides=extra), (1, 8, 8))


def _views(v=2, n=16):
    return torch.rand(v, n, 1, 8, 8)


def test_bernoulli_forward_latent_is_exactly_binary_and_gradients_reach_the_backbone():
    method = _method("bernoulli", beta=0.0)  # no KL: the only path to the backbone is straight-through
    seen = []
    method.head.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    terms = method(_views())
    assert set(terms) == {"nt_xent"}
    z = seen[0]
    assert z.shape == (32, 64) and set(z.unique().tolist()) == {0.0, 1.0}
    terms["nt_xent"].backward()
    grads = [p.grad for p in method.backbone.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
    assert method.latent_head.head.net.weight.grad.abs().sum() > 0


def test_bernoulli_bits_start_image_dependent_rather_than_coin_flips():
    method = _method("bernoulli").train()
    logits = method.latent_head(method.forward_features(torch.rand(256, 1, 8, 8)))
    assert 1.5 < logits.std().item() < 3.5  # ~ 4 * sqrt(1/3) on batch-normalised features
    assert StraightThroughBernoulli(logits).uncertainty().mean() < 0.8  # bits, of at most 1


def test_relaxation_temperature_anneals_between_the_configured_values():
    method = _method("bernoulli", **{"method.relax_temperature": "[2.0,0.25]"})
    assert method.relax_temperature == 2.0  # before training: the start value
    taus = []
    for step in range(50):
        method.on_step(step, 50)
        taus.append(method.relax_temperature)
    assert taus[0] == pytest.approx(2.0) and taus[-1] == pytest.approx(0.25)
    assert all(a > b for a, b in zip(taus, taus[1:]))
    assert method.posterior(torch.rand(3, 1, 8, 8)).temperature == pytest.approx(0.25)


class _Fixed(nn.Module):
    """A latent head that ignores its input and returns fixed parameters for the first rows."""

    def __init__(self, *params, out_dim):
        super().__init__()
        self.params, self.out_dim = params, out_dim
        self.out_bits = out_dim

    def forward(self, x):
        rows = [p[: x.shape[0]] + 0 * x[:, :1] for p in self.params]  # keep the graph to the backbone
        return rows[0] if len(rows) == 1 else GaussianParams(*rows)


def _fixed_scl(latent, params, beta):
    backbone = create_backbone("convnet", in_channels=1, image_size=8)
    d = params[0].shape[1]
    return SCL(backbone, _Fixed(*params, out_dim=d), ProjectionHead(d, 16, 8), latent=latent, beta=beta)


def test_bernoulli_kl_is_the_hand_formula_on_fixed_logits():
    logits = torch.tensor([[0.0, 2.0, -1.0], [3.0, -0.5, 0.25], [-4.0, 1.0, 0.0], [0.5, 0.5, -2.0]])
    method = _fixed_scl("bernoulli", (logits,), beta=0.7)
    kl = method(torch.rand(2, 2, 1, 8, 8))["kl"]
    hand = []
    for row in logits.tolist():
        ps = [1 / (1 + math.exp(-v)) for v in row]
        hand.append(sum(p * math.log(2 * p) + (1 - p) * math.log(2 * (1 - p)) for p in ps))
    assert all(h >= 0 for h in hand)
    assert kl.item() == pytest.approx(0.7 * sum(hand) / len(hand), rel=1e-5)  # summed over bits, mean over samples


def test_gaussian_kl_is_the_hand_formula_on_fixed_parameters():
    loc = torch.tensor([[0.0, 1.0], [-2.0, 0.5], [0.3, 0.0], [1.0, 1.0]])
    scale = torch.tensor([[1.0, 0.5], [2.0, 0.1], [0.9, 1.0], [0.3, 1.5]])
    method = _fixed_scl("gaussian", (loc, scale), beta=0.1)
    kl = method(torch.rand(2, 2, 1, 8, 8))["kl"]
    hand = [
        0.5 * sum(s * s + m * m - 1 - math.log(s * s) for m, s in zip(ml, sl))
        for ml, sl in zip(loc.tolist(), scale.tolist())
    ]
    assert kl.item() == pytest.approx(0.1 * sum(hand) / len(hand), rel=1e-5)


@pytest.mark.parametrize("latent", ["gaussian", "bernoulli"])
def test_kl_term_is_non_negative_and_beta_weighted(latent):
    method = _method(latent, beta=1.0).eval()
    x = _views()
    torch.manual_seed(3)
    one = method(x)
    method.beta = 0.01
    torch.manual_seed(3)
    small = method(x)
    assert one["kl"] >= 0 and small["kl"].item() == pytest.approx(0.01 * one["kl"].item(), rel=1e-5)
    assert one["nt_xent"].item() == pytest.approx(small["nt_xent"].item(), rel=1e-6)


def test_compression_ratio_and_representation_bits():
    assert compression_ratio((3, 224, 224), 2048) == 588
    assert compression_ratio((1, 8, 8), 64) == 8
    bernoulli, gaussian = _method("bernoulli"), _method("gaussian")
    assert bernoulli.representation_bits() == 64 and gaussian.representation_bits() == 32 * 64
    assert (
        compression_ratio((1, 28, 28), _method("bernoulli", **{"method.latent_dim": 128}).representation_bits()) == 49
    )


def test_gaussian_representation_is_the_deterministic_posterior_mean():
    method = _method("gaussian", beta=1e-3).eval()
    x = torch.rand(5, 1, 8, 8)
    assert method.default_representation == "mean"
    q = method.posterior(x)
    assert isinstance(q, DiagonalNormal) and q.batch_shape == (5,) and q.event_shape == (64,)
    assert (q.uncertainty() > 0).all()
    r1, r2 = method.represent(x), method.represent(x)
    assert torch.equal(r1, r2)
    assert torch.equal(r1, method.latent_head(method.forward_features(x)).loc)
    assert not torch.equal(method.represent(x, "sample"), r1)


def test_bernoulli_representation_is_the_bits():
    method = _method("bernoulli").eval()
    x = torch.rand(5, 1, 8, 8)
    assert method.default_representation == "bits" and SCL.default_representation == "mean"
    q = method.posterior(x)
    assert isinstance(q, StraightThroughBernoulli) and q.event_shape == (64,)
    bits = method.represent(x)
    assert bits.shape == (5, 64) and torch.equal(bits, (method.latent_head(method.forward_features(x)) > 0).float())


def test_unknown_latent_and_bad_relaxation_are_errors():
    with pytest.raises(ValueError, match="gaussian, bernoulli"):
        _method("gaussian", **{"method.latent": "poisson"})
    with pytest.raises(ValueError, match="start, end"):
        _method("bernoulli", **{"method.relax_temperature": "[1.0,0.5,0.1]"})


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_load_and_build(preset):
    config = load_preset(preset)
    assert config.method.name == "scl" and preset.startswith(f"scl-{config.method.latent}-")
    assert config.method.beta == 1e-3
    shape = (1, 8, 8) if preset.endswith("digits") else (1, 28, 28)
    method = create_method(config, shape)
    assert isinstance(method, SCL)
    assert set(method(torch.rand(2, 4, *shape))) == {"nt_xent", "kl"}
    assert method.represent(torch.rand(3, *shape)).shape == (3, config.method.latent_dim)


@pytest.mark.parametrize("latent", ["gaussian", "bernoulli"])
def test_trains_on_digits_with_finite_decreasing_loss(tmp_path, latent):
    trainer = Trainer(load_config(f"scl-{latent}-digits", overrides=QUICK), tmp_path / "run")
    method = trainer.fit()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    records = [r for r in records if "loss" in r]  # training records (the online monitors log their own)
    first = [r["loss"] for r in records if r["epoch"] == 1]  # epochs are numbered from 1 in metrics.jsonl
    last = [r["loss"] for r in records if r["epoch"] == 6]
    assert len(records) == 24 and all(math.isfinite(r["loss"]) and r["kl"] >= 0 for r in records)
    assert sum(last) / len(last) < sum(first) / len(first)
    if latent == "bernoulli":
        assert method.relax_temperature == pytest.approx(0.5)  # annealed to the end value by the trainer
