"""DiagonalNormal against torch's Independent(Normal) and a Monte-Carlo KL oracle."""

import math

import pytest
import torch
from torch.distributions import Independent, Normal, kl_divergence

from probssl.distributions import DiagonalNormal, kl_diagonal_normal_standard

F64 = torch.float64


def _params(seed, shape=(4, 6)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=F64), 0.2 + torch.rand(shape, generator=g, dtype=F64) * 2


def test_log_prob_and_entropy_match_independent_normal():
    loc, scale = _params(0)
    p, ref = DiagonalNormal(loc, scale), Independent(Normal(loc, scale), 1)
    x = torch.randn(3, 4, 6, dtype=F64)
    torch.testing.assert_close(p.log_prob(x), ref.log_prob(x))
    torch.testing.assert_close(p.entropy(), ref.entropy())
    torch.testing.assert_close(p.mean, loc)
    torch.testing.assert_close(p.variance, scale**2)
    torch.testing.assert_close(p.uncertainty(), scale.mean(-1))
    assert p.batch_shape == (4,) and p.event_shape == (6,)


def test_kl_closed_forms_match_torch_and_monte_carlo():
    loc_p, scale_p = _params(1)
    loc_q, scale_q = _params(2)
    p, q = DiagonalNormal(loc_p, scale_p), DiagonalNormal(loc_q, scale_q)
    tp, tq = Independent(Normal(loc_p, scale_p), 1), Independent(Normal(loc_q, scale_q), 1)
    kl = kl_divergence(p, q)
    torch.testing.assert_close(kl, kl_divergence(tp, tq))
    # Monte-Carlo oracle E_p[log p - log q]
    x = p.rsample((40000,))
    per = p.log_prob(x) - q.log_prob(x)
    assert ((per.mean(0) - kl).abs() < 4 * per.std(0) / math.sqrt(40000)).all()

    std = DiagonalNormal.standard(6, (4,), dtype=F64)
    ref_std = kl_divergence(tp, Independent(Normal(torch.zeros_like(loc_p), torch.ones_like(scale_p)), 1))
    torch.testing.assert_close(kl_diagonal_normal_standard(loc_p, scale_p), ref_std)
    torch.testing.assert_close(kl_divergence(p, std), ref_std)
    per_std = p.log_prob(x) - std.log_prob(x)
    assert ((per_std.mean(0) - ref_std).abs() < 4 * per_std.std(0) / math.sqrt(40000)).all()


def test_kl_standard_is_zero_at_prior_and_accurate_near_it():
    assert kl_diagonal_normal_standard(torch.zeros(3, 5), torch.ones(3, 5)).abs().max() == 0
    # σ = 1 + δ: KL ≈ d δ² (σ² - 1 - log σ² ≈ 2δ²), which naive evaluation would lose
    delta = 1e-6
    kl = kl_diagonal_normal_standard(torch.zeros(1, 4, dtype=F64), torch.full((1, 4), 1 + delta, dtype=F64))
    assert kl.item() == pytest.approx(4 * delta**2, rel=1e-5)


def test_rsample_reparameterised_with_right_moments():
    loc = torch.tensor([1.0, -2.0], dtype=F64, requires_grad=True)
    scale = torch.tensor([0.5, 2.0], dtype=F64, requires_grad=True)
    x = DiagonalNormal(loc, scale).rsample((50000,))
    assert ((x.mean(0) - loc).abs() < 4 * scale / math.sqrt(50000)).all()
    assert ((x.std(0) - scale).abs() < 0.02 * scale).all()
    x.sum().backward()
    torch.testing.assert_close(loc.grad, torch.full((2,), 50000.0, dtype=F64))


def test_expand_and_validation():
    p = DiagonalNormal(torch.zeros(3), torch.tensor(2.0))
    assert p.expand((5,)).sample().shape == (5, 3)
    with pytest.raises(ValueError):
        DiagonalNormal(torch.zeros(3), torch.tensor([1.0, 0.0, 1.0]))
