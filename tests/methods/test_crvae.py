import json
import math

import pytest
import torch
from torch.distributions import Independent, Normal, kl_divergence

from probssl.config import load_config
from probssl.distributions import kl_diagonal_normal_standard
from probssl.methods import create_method
from probssl.train import Trainer

QUICK = ["train.epochs=6", "train.batch_size=64", "data.train_subset=256", "train.progress=false", "train.log_every=1"]


def _method(*overrides):
    return create_method(load_config("cr-vae-digits", overrides=list(overrides)), (1, 8, 8))


def _views(v=2, n=16):
    return (torch.rand(v, n, 1, 8, 8) > 0.5).float()


def _normal(q):
    return Independent(Normal(q.loc, q.scale), 1)


def test_consistency_is_gamma_kl_from_tx_posterior_to_x_posterior():
    method = _method("method.gamma=0.5").eval()  # eval: each view's posterior does not depend on the batch
    views = _views()
    terms = method(views)
    assert set(terms) == {"elbo_x", "elbo_tx", "consistency"}
    with torch.no_grad():
        q_x, q_tx = method.posterior(views[0]), method.posterior(views[1])
    expected = 0.5 * kl_divergence(_normal(q_tx), _normal(q_x)).mean()
    torch.testing.assert_close(terms["consistency"], expected)


def test_consistency_direction_on_a_hand_example():
    """q(z|x) = N(0, 1), q(z|t(x)) = N(1, 2^2) in each of d = 10 dims (encoder forced):
    KL(q(z|t(x)) || q(z|x)) = d/2 (4 - 1 - log 4 + 1) = 5 (4 - log 4); the reverse KL would be
    d/2 (1/4 - 1 + log 4 + 1/4) -- different, so the direction is checked."""
    method = _method("method.gamma=0.1")
    n, d = 3, 10
    loc = torch.stack([torch.zeros(n, d), torch.ones(n, d)])
    scale = torch.stack([torch.ones(n, d), torch.full((n, d), 2.0)])
    method.encode = lambda views: (loc, scale)
    terms = method(_views(n=n))
    assert terms["consistency"].item() == pytest.approx(0.1 * 5 * (4 - math.log(4)))


def test_consistency_is_zero_for_identical_views():
    method = _method()
    views = _views(n=8)
    terms = method(torch.stack([views[0], views[0]]))
    assert terms["consistency"].item() == 0.0
    assert terms["elbo_x"] > 0 and terms["elbo_tx"] > 0


def test_elbo_terms_and_more_views(terms_and_replayed_draw):
    method = _method("method.beta=2.0").eval()
    views = _views(v=3)
    terms, loc, scale, z = terms_and_replayed_draw(method, views)
    with torch.no_grad():
        rec = torch.distributions.Bernoulli(logits=method.decode(z)).log_prob(views).sum((2, 3, 4))
        neg_elbo = -rec + 2.0 * kl_diagonal_normal_standard(loc, scale)  # [V, N]
        q = [method.posterior(v) for v in views]
    torch.testing.assert_close(terms["elbo_x"], neg_elbo[0].mean())
    torch.testing.assert_close(terms["elbo_tx"], neg_elbo[1:].mean())
    kls = torch.stack([kl_divergence(_normal(q[k]), _normal(q[0])) for k in (1, 2)])
    torch.testing.assert_close(terms["consistency"], 1e-3 * kls.mean())
    with pytest.raises(ValueError, match="at least 2 views"):
        method(views[:1])


def test_trains_on_digits(tmp_path):
    config = load_config("cr-vae-digits", overrides=QUICK)
    method = Trainer(config, tmp_path / "run", echo=lambda s: None).fit()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    records = [r for r in records if "loss" in r]  # training records (the online monitors log their own)
    losses = [r["loss"] for r in records]
    assert len(losses) == 24 and all(math.isfinite(v) for v in losses)
    assert sum(losses[-4:]) < sum(losses[:4]), losses
    assert {"elbo_x", "elbo_tx", "consistency"} <= set(records[0])
    assert all(r["consistency"] >= 0 for r in records)
    rec = method.reconstruct(torch.rand(3, 1, 8, 8))
    assert rec.shape == (3, 1, 8, 8) and 0 <= rec.min() and rec.max() <= 1
    assert method.sample(4).shape == (4, 1, 8, 8)
