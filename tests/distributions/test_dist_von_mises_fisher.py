"""VonMisesFisher: log-Bessel accuracy, normalisation, scipy log_prob, sampling, KL, gradients, float32."""

import math

import mpmath
import numpy as np
import pytest
import torch
from scipy import integrate, special, stats
from torch.distributions import kl_divergence

from probssl.distributions import (
    HypersphericalUniform,
    VonMisesFisher,
    kl_von_mises_fisher_uniform,
    log_bessel_iv,
    log_sphere_area,
    vmf_mean_resultant_length,
)

F64 = torch.float64


def _unit(v):
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True)


# ----------------------------------------------------------------------------- special functions
@pytest.mark.parametrize("d", [2, 3, 5, 64, 101, 512])
def test_log_bessel_and_ratio_match_mpmath(d):
    nu = d / 2 - 1
    xs = [1e-3, 0.3, 1.999, 2.001, 9.0, 30.0, 255.0, 1e3, 1e5]
    got = log_bessel_iv(nu, torch.tensor(xs, dtype=F64))
    ratio = vmf_mean_resultant_length(torch.tensor(xs, dtype=F64), d)
    mpmath.mp.dps = 30
    for i, x in enumerate(xs):
        ref = float(mpmath.log(mpmath.besseli(nu, x)))
        ref_ratio = float(mpmath.besseli(nu + 1, x) / mpmath.besseli(nu, x))
        assert got[i].item() == pytest.approx(ref, rel=1e-10, abs=1e-10), (d, x)
        assert ratio[i].item() == pytest.approx(ref_ratio, rel=1e-10), (d, x)


def test_log_bessel_matches_scipy_on_a_dense_grid():
    x = np.logspace(-3, 5, 400)
    for nu in [0.0, 0.5, 7.0, 49.5, 50.0, 120.0]:
        got = log_bessel_iv(nu, torch.tensor(x)).numpy()
        with np.errstate(divide="ignore"):
            ref = np.log(special.ive(nu, x)) + x
        ok = np.isfinite(ref)  # scipy underflows to 0 for x ≪ ν (mpmath test above covers those)
        assert ok.mean() > 0.6
        np.testing.assert_allclose(got[ok], ref[ok], rtol=1e-10, atol=1e-10)


def test_log_bessel_gradients():
    x = torch.tensor([1e-2, 1.5, 2.5, 40.0, 800.0], dtype=F64, requires_grad=True)
    for nu in [0.0, 1.5, 255.0]:
        assert torch.autograd.gradcheck(lambda t, nu=nu: log_bessel_iv(nu, t), (x,), eps=1e-7, atol=1e-6, rtol=1e-6)
        assert torch.autograd.gradgradcheck(lambda t, nu=nu: log_bessel_iv(nu, t), (x,), eps=1e-7, atol=1e-6)


# ----------------------------------------------------------------------------- normalisation
@pytest.mark.parametrize("kappa", [1e-3, 1.0, 30.0, 2e3])
def test_density_integrates_to_one_on_circle(kappa):
    n = 16384  # periodic trapezoid: exp(κ cos θ) is entire, spectral convergence (resolves κ = 2e3)
    theta = torch.arange(n, dtype=F64) * (2 * math.pi / n)
    q = VonMisesFisher(_unit(torch.tensor([0.3, -1.0], dtype=F64)), torch.tensor(kappa, dtype=F64))
    total = q.log_prob(torch.stack([theta.cos(), theta.sin()], -1)).exp().sum().item() * (2 * math.pi / n)
    assert total == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("kappa", [1e-3, 1.0, 20.0, 1e3])
def test_density_integrates_to_one_on_s2_in_t(kappa):
    """∫ p dA = 2π ∫_{-1}^1 p(t) dt on S²."""
    mu = _unit(torch.tensor([1.0, 2.0, -0.5], dtype=F64))
    e2 = _unit(torch.linalg.cross(mu, torch.tensor([0.0, 0.0, 1.0], dtype=F64)))
    q = VonMisesFisher(mu, torch.tensor(kappa, dtype=F64))

    def density(t):
        return math.exp(q.log_prob(t * mu + math.sqrt(max(0.0, 1 - t * t)) * e2).item())

    val, _ = integrate.quad(density, -1, 1, points=[1 - 10 / kappa] if kappa > 10 else None, epsrel=1e-11, limit=200)
    assert 2 * math.pi * val == pytest.approx(1.0, abs=1e-8)


@pytest.mark.parametrize("d,kappa", [(16, 4.0), (64, 10.0)])
def test_density_normalised_in_high_dimension_by_importance_sampling(d, kappa):
    """E_{z~Unif}[q(z)]·|S| = 1 within 4 standard errors (se < 0.03)."""
    q = VonMisesFisher(_unit(torch.randn(d, dtype=F64)), torch.tensor(kappa, dtype=F64))
    n = 40000
    w = (q.log_prob(HypersphericalUniform(d, dtype=F64).sample((n,))) + log_sphere_area(d)).exp()
    mean, se = w.mean().item(), w.std().item() / math.sqrt(n)
    assert se < 0.03
    assert abs(mean - 1.0) < 4 * se, (mean, se)


# ----------------------------------------------------------------------------- scipy
@pytest.mark.parametrize("d", [2, 3, 10, 128])
def test_log_prob_and_entropy_match_scipy(d):
    g = torch.Generator().manual_seed(d)
    mu = _unit(torch.randn(d, generator=g, dtype=F64))
    for kappa in [1e-2, 1.0, 37.5, 5e3]:
        q = VonMisesFisher(mu, torch.tensor(kappa, dtype=F64))
        z = torch.cat([_unit(torch.randn(4, d, generator=g, dtype=F64)), q.sample((3,)), mu[None]])
        ref = stats.vonmises_fisher(mu.numpy(), kappa)
        np.testing.assert_allclose(q.log_prob(z).numpy(), ref.logpdf(z.numpy()), rtol=1e-9, atol=1e-8)
        assert q.entropy().item() == pytest.approx(ref.entropy(), rel=1e-8, abs=1e-8)


# ----------------------------------------------------------------------------- sampling
@pytest.mark.parametrize("d,kappa", [(2, 0.5), (3, 4.0), (64, 60.0), (512, 1e4)])
def test_sample_mean_matches_closed_form(d, kappa):
    mu = _unit(torch.randn(d, dtype=F64))
    q = VonMisesFisher(mu, torch.tensor(kappa, dtype=F64))
    n = 8000
    z = q.sample((n,))
    torch.testing.assert_close(torch.linalg.vector_norm(z, dim=-1), torch.ones(n, dtype=F64))
    t = z @ mu
    assert abs(t.mean().item() - q.mean_resultant_length().item()) < 4 * t.std().item() / math.sqrt(n)
    assert ((z.mean(0) - q.mean).abs() < 5 * z.std(0) / math.sqrt(n) + 1e-12).all()


def test_samples_follow_the_cosine_law_on_s2():
    """d = 3: F(t) = (e^{κt} - e^{-κ})/(e^{κ} - e^{-κ}); Kolmogorov–Smirnov."""
    kappa = 2.5
    q = VonMisesFisher(_unit(torch.randn(3, dtype=F64)), torch.tensor(kappa, dtype=F64))
    t = (q.sample((5000,)) @ q.loc).numpy()
    cdf = lambda x: np.expm1(kappa * (x + 1)) / np.expm1(2 * kappa)
    assert stats.kstest(t, cdf).pvalue > 1e-3


# ----------------------------------------------------------------------------- KL
@pytest.mark.parametrize("d", [2, 3, 64, 512])
def test_kl_to_uniform_matches_monte_carlo_oracle(d):
    kappa = torch.tensor([0.05, 2.0, 40.0, 3e3], dtype=F64)
    q = VonMisesFisher(_unit(torch.randn(4, d, dtype=F64)), kappa)
    kl = kl_divergence(q, HypersphericalUniform(d, dtype=F64))
    torch.testing.assert_close(kl, kl_von_mises_fisher_uniform(kappa, d))
    n = 3000
    per = q.log_prob(q.sample((n,))) + log_sphere_area(d)
    mc, se = per.mean(0), per.std(0) / math.sqrt(n)
    assert ((kl - mc).abs() <= 4 * se + 1e-10).all(), (kl, mc, se)
    torch.testing.assert_close(kl, log_sphere_area(d) - q.entropy())


def test_kl_small_kappa_is_kappa_squared_over_2d():
    for d in [2, 3, 512]:
        k = torch.tensor([1e-4, 1e-3], dtype=F64)
        torch.testing.assert_close(kl_von_mises_fisher_uniform(k, d), k**2 / (2 * d), rtol=1e-3, atol=0)


# ----------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("d", [2, 3, 40])
def test_gradcheck_log_prob_entropy_kl(d):
    g = torch.Generator().manual_seed(d)
    raw = torch.randn(3, d, generator=g, dtype=F64, requires_grad=True)
    kappa = torch.tensor([0.3, 5.0, 700.0], dtype=F64, requires_grad=True)
    z = _unit(torch.randn(2, 3, d, generator=g, dtype=F64))

    def f(r, k):
        q = VonMisesFisher(_unit(r), k)
        return q.log_prob(z), q.entropy(), kl_von_mises_fisher_uniform(k, d), q.mean

    assert torch.autograd.gradcheck(f, (raw, kappa), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_gradcheck_rsample_wrt_loc():
    raw = torch.tensor([[0.3, -0.8, 0.5], [-0.6, 0.2, 0.9]], dtype=F64, requires_grad=True)
    kappa = torch.tensor([3.0, 40.0], dtype=F64)

    def f(r):
        torch.manual_seed(3)  # Wood's proposals do not depend on μ: a smooth map of μ
        return VonMisesFisher(_unit(r), kappa).rsample((4,))

    assert torch.autograd.gradcheck(f, (raw,), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("kappa", [0.05, 1.5, 30.0, 1e4])
def test_rsample_kappa_gradient_is_the_inverse_cdf_derivative_on_s2(kappa):
    """d = 3 has the closed-form inverse CDF w(u, κ) = 1 + log(u + (1-u)e^{-2κ})/κ. The per-draw
    implicit gradient must equal ∂w/∂κ at fixed u = F(w) (the gradcheck of a rejection sampler)."""
    mu = _unit(torch.tensor([0.2, -0.4, 0.9], dtype=F64))
    k = torch.tensor(kappa, dtype=F64, requires_grad=True)
    w = VonMisesFisher(mu, k).rsample((8,)) @ mu
    grads = torch.stack([torch.autograd.grad(wi, k, retain_graph=True)[0] for wi in w])
    kk = torch.tensor(kappa, dtype=F64, requires_grad=True)
    wd = w.detach()
    u = torch.expm1(kappa * (wd - 1)).neg().div(-math.expm1(-2 * kappa))  # F(w) = (1 - e^{κ(w-1)}...)
    u = 1 - u  # u = P(W ≤ w)
    w_of_u = 1 + torch.log(u + (1 - u) * torch.exp(-2 * kk)) / kk
    torch.testing.assert_close(w_of_u.detach(), wd, rtol=1e-9, atol=1e-9)
    ref = torch.stack([torch.autograd.grad(wi, kk, retain_graph=True)[0] for wi in w_of_u])
    torch.testing.assert_close(grads, ref, rtol=1e-6, atol=1e-14)


@pytest.mark.parametrize("d,kappa", [(2, 0.7), (16, 5.0), (512, 300.0)])
def test_rsample_gradient_of_mean_cosine_matches_closed_form(d, kappa):
    n = 6000
    k = torch.tensor(kappa, dtype=F64, requires_grad=True)
    mu = _unit(torch.randn(d, dtype=F64))
    w = VonMisesFisher(mu, k).rsample((n,)) @ mu
    (grad,) = torch.autograd.grad(w.mean(), k)
    a = vmf_mean_resultant_length(torch.tensor(kappa, dtype=F64), d).item()
    exact = 1 - a * a - (d - 1) * a / kappa  # dA/dκ
    assert grad.item() == pytest.approx(exact, rel=0.05)


# ----------------------------------------------------------------------------- float32
@pytest.mark.parametrize("d", [3, 64, 512])
@pytest.mark.parametrize("kappa", [1e-3, 1e5])
def test_float32_finite_values_and_gradients(d, kappa):
    raw = torch.randn(4, d, requires_grad=True)
    k = torch.full((4,), kappa, requires_grad=True)
    q = VonMisesFisher(_unit(raw), k)
    z = q.rsample((3,))
    assert z.dtype == torch.float32 and torch.isfinite(z).all()
    lp = q.log_prob(z)
    kl = kl_divergence(q, HypersphericalUniform(d))
    (lp.sum() + kl.sum() + q.entropy().sum() + (z * torch.randn_like(z)).sum()).backward()
    for tensor in (lp, kl, raw.grad, k.grad):
        assert torch.isfinite(tensor).all()
    q64 = VonMisesFisher(q.loc.detach().double(), k.detach().double())
    torch.testing.assert_close(lp.double(), q64.log_prob(z.detach().double()), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(kl.double(), kl_von_mises_fisher_uniform(k.detach().double(), d), rtol=1e-5, atol=1e-12)


# ----------------------------------------------------------------------------- contract & shapes
def test_contract_scores_and_shapes():
    assert VonMisesFisher.uncertainty_kinds()[0] == "expected_cosine_distance"
    assert "concentration_inverse" in VonMisesFisher.uncertainty_kinds()
    loc = _unit(torch.randn(4, 1, 6))
    q = VonMisesFisher(loc, torch.tensor([[0.5, 2.0, 10.0]]))
    assert q.batch_shape == (4, 3) and q.event_shape == (6,)
    assert q.sample((2,)).shape == (2, 4, 3, 6)
    assert q.log_prob(_unit(torch.randn(4, 3, 6))).shape == (4, 3)
    assert q.entropy().shape == (4, 3) and q.mean.shape == (4, 3, 6)
    assert torch.equal(q.mean_direction, q.mean_direction) and torch.equal(q.mean_direction, q.loc)
    u = q.uncertainty()
    assert u.shape == (4, 3) and ((u > 0) & (u < 1)).all()
    assert (u[:, 0] > u[:, 1]).all() and (u[:, 1] > u[:, 2]).all()
    torch.testing.assert_close(q.uncertainty("concentration_inverse")[0], torch.tensor([2.0, 0.5, 0.1]))
    qe = VonMisesFisher(loc[0, 0], torch.tensor(2.0)).expand((5, 2))
    assert qe.batch_shape == (5, 2) and qe.sample((3,)).shape == (3, 5, 2, 6)
    assert qe.log_prob(qe.sample()).shape == (5, 2) and qe.entropy().shape == (5, 2)
    with pytest.raises(ValueError):
        VonMisesFisher(torch.ones(3), torch.tensor(1.0), validate_args=True)
    with pytest.raises(ValueError):
        VonMisesFisher(_unit(torch.randn(3)), torch.tensor(0.0), validate_args=True)
