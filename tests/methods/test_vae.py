import json
import math

import pytest
import torch
from torch import nn
from torch.distributions import Bernoulli, Normal

from probssl.config import load_config
from probssl.distributions import kl_diagonal_normal_standard
from probssl.methods import create_method
from probssl.methods.vae import VAE, BetaVAE
from probssl.train import Trainer, load_run

QUICK = ["train.epochs=6", "train.batch_size=64", "data.train_subset=256", "train.progress=false", "train.log_every=1"]


def train_on_digits(preset, tmp_path):
    """24 steps on 256 digits: finite, decreasing loss; returns the logged records and the method."""
    Trainer(load_config(preset, overrides=QUICK), tmp_path / "run", echo=lambda s: None).fit()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    records = [r for r in records if "loss" in r]  # training records (the online monitors log their own)
    losses = [r["loss"] for r in records]
    assert len(losses) == 24 and all(math.isfinite(v) for v in losses)
    assert sum(losses[-4:]) < sum(losses[:4]), losses
    return records, load_run(tmp_path / "run")[1]


def _method(preset="vae-digits", *overrides):
    return create_method(load_config(preset, overrides=list(overrides)), (1, 8, 8))


def _views(v=2, n=16):
    return (torch.rand(v, n, 1, 8, 8) > 0.5).float()


def test_terms_are_the_per_view_elbo(terms_and_replayed_draw):
    method = _method("beta-vae-digits").eval()
    assert isinstance(method, BetaVAE) and method.beta == 4.0
    views = _views()
    terms, loc, scale, z = terms_and_replayed_draw(method, views)
    with torch.no_grad():
        rec = Bernoulli(logits=method.decode(z)).log_prob(views).sum((2, 3, 4))  # [V, N]
    assert set(terms) == {"reconstruction", "kl"}
    torch.testing.assert_close(terms["reconstruction"], -rec.mean())
    torch.testing.assert_close(terms["kl"], 4.0 * kl_diagonal_normal_standard(loc, scale).mean())


def test_beta_zero_is_pure_reconstruction():
    method = _method("beta-vae-digits").eval()  # beta = 4
    views = _views()
    torch.manual_seed(0)
    weighted = method(views)
    method.beta = 0.0
    torch.manual_seed(0)
    terms = method(views)
    assert terms["kl"].item() == 0.0
    assert weighted["kl"].item() > 0
    assert sum(terms.values()).item() == pytest.approx(weighted["reconstruction"].item())


def test_vae_has_beta_one():
    assert _method().beta == 1.0
    with pytest.raises(ValueError, match="Unknown config key 'method.beta' of method 'vae'"):
        _method("vae-digits", "method.beta=4")


class _Flatten(nn.Module):
    feature_dim = 1

    def forward(self, x):
        return x.reshape(x.shape[0], 1)


class _FixedGaussian(nn.Module):
    """q(z|x) = N(loc, scale^2), the same for every x (d = 1)."""

    def __init__(self, loc, scale):
        super().__init__()
        self.loc, self.scale = loc, scale
        self.out_dim = 1

    def forward(self, h):
        return torch.full_like(h, self.loc), torch.full_like(h, self.scale)


class _LinearDecoder(nn.Module):
    def __init__(self, w, b):
        super().__init__()
        self.w, self.b = w, b

    def forward(self, z):
        return (self.w * z + self.b).reshape(-1, 1, 1, 1)


def test_negative_elbo_upper_bounds_minus_log_evidence():
    """1-D model p(z) = N(0, 1), p(x|z) = N(sigmoid(2z - 0.5), 0.05): log p(x) by quadrature.

    The method's -ELBO (Monte Carlo over many copies of x) equals -log p(x) + KL(q || p(z|x)) >= -log p(x),
    and an importance-sampling estimate built from its likelihood recovers log p(x).
    """
    log_var_x = math.log(0.05)
    method = VAE(
        _Flatten(), _FixedGaussian(0.3, 0.5), _LinearDecoder(2.0, -0.5), likelihood="gaussian", log_var_x=log_var_x
    )
    x = torch.full((1, 1, 1, 1), 0.7, dtype=torch.float64)
    grid = torch.linspace(-12, 12, 400001, dtype=torch.float64)
    log_joint = Normal(0.0, 1.0).log_prob(grid) + Normal(
        torch.sigmoid(2 * grid - 0.5), math.exp(0.5 * log_var_x)
    ).log_prob(x.reshape(()))
    log_px = torch.log(torch.trapezoid(torch.exp(log_joint), grid)).item()
    q = Normal(0.3, 0.5)
    post = torch.exp(log_joint - log_px)
    kl_q_post = torch.trapezoid(torch.exp(q.log_prob(grid)) * (q.log_prob(grid) - torch.log(post)), grid).item()

    m = 20000
    views = x.float().expand(m, 1, 1, 1, 1).contiguous()  # [V = m, N = 1, ...]
    with torch.no_grad():
        rec, loc, scale, z = method.view_elbo_parts(views)
        terms = method(views)
    neg_elbo = sum(terms.values()).item()
    stderr = rec.std().item() / math.sqrt(m)
    assert neg_elbo >= -log_px - 4 * stderr
    assert neg_elbo == pytest.approx(-log_px + kl_q_post, abs=4 * stderr)
    assert kl_q_post > 20 * stderr  # the bound is not tight here, so the check above is not vacuous
    log_w = rec.double() + Normal(0.0, 1.0).log_prob(z.double()).squeeze(-1) - q.log_prob(z.double()).squeeze(-1)
    is_estimate = (torch.logsumexp(log_w.flatten(), 0) - math.log(m)).item()
    assert is_estimate == pytest.approx(log_px, abs=0.02)


@pytest.mark.parametrize("preset", ["vae-digits", "beta-vae-digits"])
def test_trains_on_digits(tmp_path, preset):
    records, method = train_on_digits(preset, tmp_path)
    assert {"reconstruction", "kl"} <= set(records[0])
    rec = method.reconstruct(torch.rand(3, 1, 8, 8))
    sample = method.sample(4, torch.Generator().manual_seed(0))
    assert rec.shape == (3, 1, 8, 8) and sample.shape == (4, 1, 8, 8)
    assert 0 <= rec.min() and rec.max() <= 1 and 0 <= sample.min() and sample.max() <= 1
