"""StraightThroughBernoulli: exact bits forward, relaxed gradients backward, exact densities."""

import math

import numpy as np
import pytest
import torch
from torch.distributions import Bernoulli, Independent, kl_divergence

from probssl.distributions import StraightThroughBernoulli, anneal_temperature, kl_bernoulli_uniform

F64 = torch.float64


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("temperature", [0.1, 1.0, 5.0])
def test_forward_is_exactly_binary(dtype, temperature):
    logits = (torch.randn(64, 32, dtype=dtype) * 3).requires_grad_()
    b = StraightThroughBernoulli(logits, temperature).rsample((10,))
    assert b.dtype == dtype
    assert ((b == 0) | (b == 1)).all()


def test_straight_through_gradient_is_relaxed_gradient():
    logits = torch.tensor([[-2.0, 0.0, 0.5, 3.0]], dtype=F64, requires_grad=True)
    tau = 0.7
    dist = StraightThroughBernoulli(logits, tau)
    torch.manual_seed(11)
    b = dist.rsample((1000,))
    (g,) = torch.autograd.grad(b.sum(), logits)
    torch.manual_seed(11)
    r = dist.relaxed_rsample((1000,))
    expected = (r * (1 - r) / tau).sum(0).detach()
    torch.testing.assert_close(g, expected)
    # the hard bits are the thresholded relaxed sample (same noise)
    assert torch.equal(b.detach(), (r > 0.5).to(F64))


def test_gradient_sign_on_simple_objective():
    """Maximising the number of ones must push every logit up."""
    logits = torch.zeros(8, 16, requires_grad=True)
    StraightThroughBernoulli(logits, 0.5).rsample((4,)).mean().backward()
    assert (logits.grad > 0).all()
    # and a few SGD steps on "match the target bits" move probabilities the right way
    target = (torch.arange(16) % 2).float()
    lg = torch.zeros(16, requires_grad=True)
    opt = torch.optim.SGD([lg], lr=1.0)
    for _ in range(50):
        opt.zero_grad()
        ((StraightThroughBernoulli(lg, 0.5).rsample((32,)) - target) ** 2).sum(-1).mean().backward()
        opt.step()
    p = torch.sigmoid(lg.detach())
    assert (p[target == 1] > 0.8).all() and (p[target == 0] < 0.2).all()


def test_sample_means_match_probs():
    logits = torch.tensor([-3.0, -1.0, 0.0, 0.4, 2.5], dtype=F64)
    p = torch.sigmoid(logits)
    dist = StraightThroughBernoulli(logits, 0.5)
    n = 40000
    tol = 4 * torch.sqrt(p * (1 - p) / n) + 1e-4
    assert ((dist.rsample((n,)).mean(0) - p).abs() < tol).all()
    assert ((dist.sample((n,)).mean(0) - p).abs() < tol).all()
    # relaxed: P(r > ½) = p exactly, and E[r] → p as τ → 0
    r = dist.relaxed_rsample((n,))
    assert ((r > 0.5).to(F64).mean(0) - p).abs().lt(tol).all()
    r_cold = StraightThroughBernoulli(logits, 0.05).relaxed_rsample((n,))
    assert ((r_cold.mean(0) - p).abs() < 0.02).all()
    assert ((r > 0) & (r < 1)).all()


def test_log_prob_entropy_and_kl_exact():
    logits = torch.tensor([[-50.0, -4.0, -0.3, 0.0, 1.7, 50.0]], dtype=F64)
    dist = StraightThroughBernoulli(logits)
    ref = Independent(Bernoulli(logits=logits), 1)
    bits = torch.tensor([[0.0, 1.0, 1.0, 0.0, 1.0, 1.0]], dtype=F64)
    torch.testing.assert_close(dist.log_prob(bits), ref.log_prob(bits))
    p = torch.sigmoid(logits).numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(np.where(p > 0, p * np.log(p), 0) + np.where(p < 1, (1 - p) * np.log1p(-p), 0))
        kl_direct = np.where(p > 0, p * np.log(2 * p), 0) + np.where(p < 1, (1 - p) * np.log(2 * (1 - p)), 0)
    torch.testing.assert_close(dist.entropy(), torch.tensor(h.sum(-1)), rtol=1e-12, atol=1e-18)
    torch.testing.assert_close(kl_bernoulli_uniform(logits), torch.tensor(kl_direct.sum(-1)), rtol=1e-12, atol=1e-18)
    torch.testing.assert_close(dist.uncertainty(), torch.tensor(h.mean(-1) / math.log(2)))
    # entropy of the torch reference
    torch.testing.assert_close(dist.entropy(), ref.entropy())
    # registered KL between two of them
    other = torch.tensor([[1.0, -2.0, 0.3, 0.0, -1.0, 3.0]], dtype=F64)
    torch.testing.assert_close(
        kl_divergence(dist, StraightThroughBernoulli(other)),
        kl_divergence(ref, Independent(Bernoulli(logits=other), 1)),
    )


def test_kl_uniform_zero_at_half_nonnegative_and_bounded():
    assert kl_bernoulli_uniform(torch.zeros(3, 7)).abs().max().item() == 0.0
    lg = torch.randn(100, 9) * 10
    kl = kl_bernoulli_uniform(lg)
    assert (kl >= 0).all() and (kl <= 9 * math.log(2) + 1e-5).all()
    assert kl_bernoulli_uniform(torch.full((1, 4), 100.0, dtype=F64)).item() == pytest.approx(4 * math.log(2))
    u = StraightThroughBernoulli(torch.zeros(2, 5)).uncertainty()
    torch.testing.assert_close(u, torch.ones(2))


def test_anneal_temperature():
    assert anneal_temperature(0, 1.0, 0.5, 100) == 1.0
    assert anneal_temperature(100, 1.0, 0.5, 100) == pytest.approx(0.5)
    assert anneal_temperature(50, 1.0, 0.25, 100) == pytest.approx(0.5)  # geometric midpoint
    assert anneal_temperature(10_000, 1.0, 0.5, 100) == pytest.approx(0.5)  # clamped
    assert anneal_temperature(-5, 1.0, 0.5, 100) == 1.0
    vals = [anneal_temperature(s, 2.0, 0.1, 50) for s in range(60)]
    assert all(a >= b for a, b in zip(vals, vals[1:]))
    with pytest.raises(ValueError):
        anneal_temperature(1, 0.0, 0.5, 10)
    with pytest.raises(ValueError):
        StraightThroughBernoulli(torch.zeros(3), temperature=0.0)


def test_shapes_and_support_validation():
    dist = StraightThroughBernoulli(torch.zeros(4, 3))
    assert dist.batch_shape == (4,) and dist.event_shape == (3,)
    assert dist.rsample((2,)).shape == (2, 4, 3)
    assert dist.expand((5, 4)).sample().shape == (5, 4, 3)
    with pytest.raises(ValueError):
        dist.log_prob(torch.full((4, 3), 0.5))
