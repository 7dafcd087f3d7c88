import json
import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal

from probssl.config import load_config, load_preset
from probssl.distributions import DiagonalNormal
from probssl.losses.generative import simvae_group_prior
from probssl.methods import create_method
from probssl.train import Trainer

QUICK = ["train.epochs=6", "train.batch_size=64", "data.train_subset=256", "train.progress=false", "train.log_every=1"]
PRESETS = [f"{m}-{d}" for m in ("simvae", "vae", "beta-vae", "cr-vae") for d in ("digits", "mnist", "fashion-mnist")]


def _simvae(*overrides):
    return create_method(load_config("simvae-digits", overrides=list(overrides)), (1, 8, 8))


def _views(v=2, n=16):
    return (torch.rand(v, n, 1, 8, 8) > 0.5).float()


@pytest.mark.parametrize("preset", PRESETS)
def test_every_generative_preset_loads_and_builds(preset):
    config = load_preset(preset)
    assert config.method.name == preset.rsplit("-", 2 if "fashion" in preset else 1)[0]
    assert config.model.embed_dim == 10 and config.augment.recipe == "simvae"
    method = create_method(config, (1, 8, 8) if preset.endswith("digits") else (1, 28, 28))
    assert method.probabilistic and method.default_representation == "mean"


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["method.likelihood=gaussian", "method.log_var_x=-2.0", "method.entropy=official", "method.beta=0.5"],
        ["method.exact_marginal=true", "method.content_prior=uniform", "augment.views=3"],
    ],
)
def test_loss_terms_equal_the_elbo_computed_independently(overrides, terms_and_replayed_draw):
    torch.manual_seed(1)
    method = _simvae(*overrides).eval()  # eval: BatchNorm statistics do not depend on the batch
    c = load_config("simvae-digits", overrides=overrides).method
    views = _views(v=3 if "augment.views=3" in overrides else 2)
    terms, loc, scale, z = terms_and_replayed_draw(method, views)  # z: the same draw as inside loss_terms
    with torch.no_grad():
        logits = method.decode(z)
        if c.likelihood == "bernoulli":
            rec = Bernoulli(logits=logits).log_prob(views).sum((2, 3, 4))
        else:
            rec = Normal(torch.sigmoid(logits), math.exp(0.5 * c.log_var_x)).log_prob(views).sum((2, 3, 4))
        if c.entropy == "correct":
            ent = DiagonalNormal(loc, scale).entropy()
        else:
            ent = 0.5 * (2 * math.pi * torch.log(scale**2)).sum(-1)
        prior = simvae_group_prior(z, c.prior_variance, c.content_prior, c.exact_marginal)
    assert set(terms) == {"reconstruction", "prior", "entropy"}
    torch.testing.assert_close(terms["reconstruction"], -rec.sum(0).mean())
    torch.testing.assert_close(terms["prior"], -c.beta * prior.mean())
    torch.testing.assert_close(terms["entropy"], -c.beta * ent.sum(0).mean())


def test_prior_term_closed_form_on_a_hand_example():
    """Encoder outputs forced to known values: the prior term is the hand-computed closed form."""
    method = _simvae("method.beta=1.0", "model.embed_dim=2").eval()
    z = torch.tensor([[[0.0, 1.0]], [[2.0, 1.0]]])  # J = 2, N = 1, d = 2: zbar = (1, 1), S = 2
    method.encode = lambda views: (z, torch.full_like(z, 1e-30))  # scale ~ 0: z is the mean
    terms = method(_views(n=1))
    s2 = 0.15
    log_prior = -2 / (2 * s2) - 2 * 2 / 2 * math.log(2 * math.pi * s2) - 2 / 2 - 2 / 2 * math.log(2 * math.pi)
    assert terms["prior"].item() == pytest.approx(-log_prior, rel=1e-6)


def test_posterior_reconstruct_sample_and_prior():
    method = _simvae().eval()
    images = torch.rand(5, 1, 8, 8)
    q = method.posterior(images)
    assert isinstance(q, DiagonalNormal) and q.batch_shape == (5,) and q.event_shape == (10,)
    assert (q.uncertainty() > 0).all()
    assert torch.equal(method.represent(images), q.mean)
    rec = method.reconstruct(images)
    assert rec.shape == (5, 1, 8, 8) and rec.min() >= 0 and rec.max() <= 1
    method.train()
    gen = method.sample(7, torch.Generator().manual_seed(0))
    assert method.training  # mode restored
    assert gen.shape == (7, 1, 8, 8) and gen.min() >= 0 and gen.max() <= 1
    again = method.sample(7, torch.Generator().manual_seed(0))
    assert torch.equal(gen, again)
    # z ~ N(0, (1 + s^2) I): the marginal of one latent under the Gaussian content prior
    z = method.prior_sample(20000, torch.Generator().manual_seed(1))
    assert z.std().item() == pytest.approx(math.sqrt(1.15), rel=0.02)
    flat = _simvae("method.content_prior=uniform")
    assert flat.prior_sample(20000, torch.Generator().manual_seed(1)).std().item() == pytest.approx(1.0, rel=0.02)


def test_bad_settings_are_errors():
    with pytest.raises(ValueError, match="correct, official"):
        _simvae("method.entropy=exact")
    with pytest.raises(ValueError, match="gaussian, uniform"):
        _simvae("method.content_prior=laplace")
    with pytest.raises(ValueError, match="bernoulli, gaussian"):
        _simvae("method.likelihood=poisson")


def train_on_digits(preset, tmp_path, extra=()):
    """Train a preset for 24 steps on 256 digits; returns the logged records and the trained method."""
    config = load_config(preset, overrides=QUICK + list(extra))
    method = Trainer(config, tmp_path / "run", echo=lambda s: None).fit()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    records = [r for r in records if "loss" in r]  # training records (the online monitors log their own)
    losses = [r["loss"] for r in records]
    assert len(losses) == 24 and all(math.isfinite(v) for v in losses)
    assert sum(losses[-4:]) < sum(losses[:4]), losses
    return records, method


def test_simvae_trains_on_digits(tmp_path):
    records, method = train_on_digits("simvae-digits", tmp_path)
    assert {"reconstruction", "prior", "entropy"} <= set(records[0])
    images = torch.rand(3, 1, 8, 8)
    assert method.reconstruct(images).shape == (3, 1, 8, 8)
    assert method.sample(4).shape == (4, 1, 8, 8)
