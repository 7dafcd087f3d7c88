"""PowerSpherical: normalisation, exact log_prob, moments, KL, gradients, float32 range, contract."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, special
from torch.distributions import kl_divergence

from probssl.distributions import (
    HypersphericalUniform,
    PowerSpherical,
    kl_power_spherical_uniform,
    log_sphere_area,
)

F64 = torch.float64


def _unit(v):
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True)


def _oracle_log_prob(cos, kappa, d):
    """log[(1 + t)^κ / N], N from scipy's betaln: N = 2^{α+β} π^β B(α, β)/Γ(β) ... written out."""
    a, b = (d - 1) / 2 + kappa, (d - 1) / 2
    log_n = (a + b) * math.log(2) + b * math.log(math.pi) + special.gammaln(a) - special.gammaln(a + b)
    return kappa * np.log1p(cos) - log_n


# ----------------------------------------------------------------------------- normalisation
@pytest.mark.parametrize("kappa", [1e-3, 0.7, 5.0, 80.0])
def test_density_integrates_to_one_on_circle(kappa):
    """∫_0^{2π} p(z(θ)) dθ by adaptive quadrature split at the mode and at the antipode, where
    (1 + cos)^κ has its |θ - θ₀ - π|^{2κ} cusp."""
    theta0 = 0.7
    q = PowerSpherical(torch.tensor([math.cos(theta0), math.sin(theta0)], dtype=F64), torch.tensor(kappa, dtype=F64))

    def density(th):
        return math.exp(q.log_prob(torch.tensor([math.cos(th), math.sin(th)], dtype=F64)).item())

    total = sum(
        integrate.quad(density, lo, hi, epsabs=1e-13, epsrel=1e-12, limit=200)[0]
        for lo, hi in [(theta0, theta0 + math.pi), (theta0 + math.pi, theta0 + 2 * math.pi)]
    )
    assert total == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("kappa", [1e-3, 1.0, 20.0, 1e3])
def test_density_integrates_to_one_on_s2_in_t(kappa):
    """On S²: ∫ p dA = 2π ∫_{-1}^{1} p(t) dt (sphere measure in the cosine t = μᵀz)."""
    mu = _unit(torch.tensor([1.0, 2.0, -0.5], dtype=F64))
    q = PowerSpherical(mu, torch.tensor(kappa, dtype=F64))
    e2 = _unit(torch.linalg.cross(mu, torch.tensor([0.0, 0.0, 1.0], dtype=F64)))

    def density(t):
        z = t * mu + math.sqrt(max(0.0, 1 - t * t)) * e2
        return math.exp(q.log_prob(z).item())

    val, _ = integrate.quad(density, -1, 1, points=[1 - 10 / kappa] if kappa > 10 else None, epsrel=1e-11, limit=200)
    assert 2 * math.pi * val == pytest.approx(1.0, abs=1e-8)


@pytest.mark.parametrize("d,kappa", [(16, 3.0), (64, 20.0)])
def test_density_normalised_in_high_dimension_by_importance_sampling(d, kappa):
    """E_{z~Unif}[q(z)]·|S| = 1 within 4 standard errors (se < 0.03 so the check means something)."""
    g = torch.Generator().manual_seed(d)
    mu = _unit(torch.randn(d, generator=g, dtype=F64))
    q = PowerSpherical(mu, torch.tensor(kappa, dtype=F64))
    n = 40000
    w = (q.log_prob(HypersphericalUniform(d, dtype=F64).sample((n,))) + log_sphere_area(d)).exp()
    mean, se = w.mean().item(), w.std().item() / math.sqrt(n)
    assert se < 0.03
    assert abs(mean - 1.0) < 4 * se, (mean, se)


def test_kappa_to_zero_is_the_uniform():
    for d in [2, 3, 64, 512]:
        q = PowerSpherical(_unit(torch.randn(d, dtype=F64)), torch.tensor(1e-12, dtype=F64))
        z = _unit(torch.randn(4, d, dtype=F64))
        torch.testing.assert_close(q.log_prob(z), torch.full((4,), -log_sphere_area(d), dtype=F64), rtol=0, atol=1e-9)
        assert q.entropy().item() == pytest.approx(log_sphere_area(d), abs=1e-9)


# ----------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("d", [2, 3, 10, 512])
def test_log_prob_matches_scipy_oracle(d):
    g = torch.Generator().manual_seed(d)
    mu = _unit(torch.randn(d, generator=g, dtype=F64))
    for kappa in [1e-3, 1.0, 37.5, 1e5]:
        q = PowerSpherical(mu, torch.tensor(kappa, dtype=F64))
        z = torch.cat([_unit(torch.randn(5, d, generator=g, dtype=F64)), q.sample((3,)), mu[None]])
        ref = _oracle_log_prob((z @ mu).numpy(), kappa, d)
        np.testing.assert_allclose(q.log_prob(z).numpy(), ref, rtol=1e-10, atol=1e-8)


def test_entropy_matches_quadrature_on_s2():
    mu = torch.tensor([0.0, 0.0, 1.0], dtype=F64)
    for kappa in [0.5, 8.0, 300.0]:
        q = PowerSpherical(mu, torch.tensor(kappa, dtype=F64))

        def integrand(t, q=q):
            lp = q.log_prob(torch.tensor([math.sqrt(max(0.0, 1 - t * t)), 0.0, t], dtype=F64)).item()
            return -math.exp(lp) * lp

        val, _ = integrate.quad(integrand, -1, 1, epsrel=1e-11, limit=400)
        assert q.entropy().item() == pytest.approx(2 * math.pi * val, abs=1e-8)


# ----------------------------------------------------------------------------- sampling
@pytest.mark.parametrize("d,kappa", [(2, 0.3), (3, 4.0), (64, 50.0), (512, 1e4)])
def test_sample_moments_match_closed_form(d, kappa):
    mu = _unit(torch.randn(d, dtype=F64))
    q = PowerSpherical(mu, torch.tensor(kappa, dtype=F64))
    n = 20000
    z = q.sample((n,))
    torch.testing.assert_close(torch.linalg.vector_norm(z, dim=-1), torch.ones(n, dtype=F64))
    t = z @ mu
    assert abs(t.mean().item() - kappa / (kappa + d - 1)) < 4 * t.std().item() / math.sqrt(n)
    # the tangent part averages to 0 and E[z] = μ E[t]
    se = z.std(0) / math.sqrt(n)
    assert ((z.mean(0) - q.mean).abs() < 5 * se + 1e-12).all()
    # Var[t] from the Beta law: Var[2B - 1] = 4αβ/((α+β)²(α+β+1))
    a, b = (d - 1) / 2 + kappa, (d - 1) / 2
    var = 4 * a * b / ((a + b) ** 2 * (a + b + 1))
    assert t.var().item() == pytest.approx(var, rel=0.05)


def test_samples_follow_the_marginal_law_of_t():
    """Kolmogorov–Smirnov of (1 + t)/2 against Beta(α, β) (d = 5, κ = 3)."""
    from scipy import stats

    d, kappa = 5, 3.0
    q = PowerSpherical(_unit(torch.randn(d, dtype=F64)), torch.tensor(kappa, dtype=F64))
    t = (q.sample((5000,)) @ q.loc).numpy()
    assert stats.kstest((1 + t) / 2, stats.beta((d - 1) / 2 + kappa, (d - 1) / 2).cdf).pvalue > 1e-3


def test_mean_direction_is_deterministic_and_mode():
    loc = _unit(torch.randn(3, 7, dtype=F64))
    q = PowerSpherical(loc, torch.tensor([0.1, 1.0, 100.0], dtype=F64))
    assert torch.equal(q.mean_direction, q.mean_direction) and torch.equal(q.mean_direction, loc)
    assert torch.equal(q.mode, loc)
    torch.testing.assert_close(q.mean, loc * (q.concentration / (q.concentration + 6))[:, None])


# ----------------------------------------------------------------------------- KL
@pytest.mark.parametrize("d", [2, 3, 64, 512])
def test_kl_to_uniform_matches_monte_carlo_oracle(d):
    kappa = torch.tensor([0.05, 2.0, 40.0, 3e3], dtype=F64)
    q = PowerSpherical(_unit(torch.randn(4, d, dtype=F64)), kappa)
    kl = kl_divergence(q, HypersphericalUniform(d, dtype=F64))
    torch.testing.assert_close(kl, kl_power_spherical_uniform(kappa, d))
    n = 4000
    per = q.log_prob(q.sample((n,))) + log_sphere_area(d)  # log q - log p_uniform
    mc, se = per.mean(0), per.std(0) / math.sqrt(n)
    assert ((kl - mc).abs() <= 4 * se + 1e-10).all(), (kl, mc, se)
    torch.testing.assert_close(kl, log_sphere_area(d) - q.entropy())


def test_kl_is_zero_at_kappa_zero_and_increasing():
    k = torch.logspace(-6, 5, 50, dtype=F64)
    for d in [2, 3, 512]:
        kl = kl_power_spherical_uniform(k, d)
        assert (kl >= 0).all() and (kl.diff() > 0).all()
        assert kl_power_spherical_uniform(torch.tensor(0.0, dtype=F64), d).item() == pytest.approx(0.0, abs=1e-15)
        # O(κ²) at 0: KL/κ² tends to a constant (½ Var_unif[log(1+t)])
        ratio = kl[:3] / k[:3] ** 2
        assert torch.allclose(ratio, ratio[0].expand(3), rtol=1e-3)


# ----------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("d", [3, 32])
def test_gradcheck_log_prob_entropy_kl(d):
    g = torch.Generator().manual_seed(d)
    raw = torch.randn(2, d, generator=g, dtype=F64, requires_grad=True)
    kappa = torch.tensor([0.7, 25.0], dtype=F64, requires_grad=True)
    z = _unit(torch.randn(3, 2, d, generator=g, dtype=F64))

    def f(r, k):
        q = PowerSpherical(_unit(r), k)  # loc on the sphere for every perturbation
        return q.log_prob(z), q.entropy(), kl_power_spherical_uniform(k, d)

    assert torch.autograd.gradcheck(f, (raw, kappa), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_gradcheck_rsample_wrt_loc():
    """With the seed fixed the draws of B' and v do not depend on μ: rsample is a smooth map of μ."""
    raw = torch.tensor([[0.3, -0.8, 0.5], [-0.6, 0.2, 0.9]], dtype=F64, requires_grad=True)
    kappa = torch.tensor([3.0, 40.0], dtype=F64)

    def f(r):
        torch.manual_seed(7)
        return PowerSpherical(_unit(r), kappa).rsample((4,))

    assert torch.autograd.gradcheck(f, (raw,), eps=1e-6, atol=1e-6)


def test_rsample_gradient_wrt_kappa_is_the_implicit_reparameterisation():
    """dt/dκ per draw = -2 dB'/dκ with dB'/dκ = -∂_κ F_Beta(B'; β, β+κ)/f(B') (Figurnov et al.);
    oracle: scipy's regularised incomplete beta, central differences. torch's Beta gradient uses
    approximations, hence the 1e-2 tolerance; the expectation test below is exact."""
    d, kappa0 = 6, 4.0
    mu = _unit(torch.randn(d, dtype=F64))
    kappa = torch.tensor(kappa0, dtype=F64, requires_grad=True)
    t = PowerSpherical(mu, kappa).rsample((6,)) @ mu
    grads = torch.stack([torch.autograd.grad(ti, kappa, retain_graph=True)[0] for ti in t]).numpy()
    bp = ((1 - t) / 2).detach().numpy()
    a, b, h = (d - 1) / 2, (d - 1) / 2 + kappa0, 1e-5
    dF = (special.betainc(a, b + h, bp) - special.betainc(a, b - h, bp)) / (2 * h)
    pdf = np.exp((a - 1) * np.log(bp) + (b - 1) * np.log1p(-bp) - special.betaln(a, b))
    np.testing.assert_allclose(grads, 2 * dF / pdf, rtol=1e-2)


def test_rsample_gradient_of_mean_cosine_matches_closed_form():
    d, n = 10, 20000
    kappa = torch.tensor(7.0, dtype=F64, requires_grad=True)
    mu = _unit(torch.randn(d, dtype=F64))
    t = PowerSpherical(mu, kappa).rsample((n,)) @ mu
    (grad,) = torch.autograd.grad(t.mean(), kappa)
    exact = (d - 1) / (7.0 + d - 1) ** 2  # d/dκ κ/(κ+d-1)
    assert grad.item() == pytest.approx(exact, rel=0.05)


# ----------------------------------------------------------------------------- float32
@pytest.mark.parametrize("d", [3, 64, 512])
@pytest.mark.parametrize("kappa", [1e-3, 1e5])
def test_float32_finite_values_and_gradients(d, kappa):
    raw = torch.randn(4, d, requires_grad=True)
    k = torch.full((4,), kappa, requires_grad=True)
    q = PowerSpherical(_unit(raw), k)
    z = q.rsample((3,))
    assert z.dtype == torch.float32 and torch.isfinite(z).all()
    lp = q.log_prob(z)
    kl = kl_divergence(q, HypersphericalUniform(d))
    out = lp.sum() + kl.sum() + q.entropy().sum() + (z * torch.randn_like(z)).sum()
    out.backward()
    for tensor in (lp, kl, raw.grad, k.grad):
        assert torch.isfinite(tensor).all()
    # float32 values agree with the float64 computation
    # (same float32 inputs: a float64 re-normalised μ would move κ μᵀz by κ·eps32 ≈ 1e-2)
    q64 = PowerSpherical(q.loc.detach().double(), k.detach().double())
    torch.testing.assert_close(lp.double(), q64.log_prob(z.detach().double()), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(kl.double(), kl_power_spherical_uniform(k.detach().double(), d), rtol=1e-5, atol=1e-12)


def test_high_concentration_samples_stay_near_the_mean_in_float32():
    mu = _unit(torch.randn(3))
    z = PowerSpherical(mu, torch.tensor(1e5)).sample((2000,))
    one_minus_t = (1 - z.double() @ mu.double()).numpy()
    # E[1 - t] = (d-1)/(κ + d - 1) ≈ 2e-5, resolved although float32 eps is 1.2e-7 relative to 1
    assert one_minus_t.mean() == pytest.approx(2 / (1e5 + 2), rel=0.1)


# ----------------------------------------------------------------------------- contract & shapes
def test_contract_scores_and_shapes():
    assert PowerSpherical.uncertainty_kinds()[0] == "expected_cosine_distance"
    assert set(PowerSpherical.uncertainty_kinds()) >= {"expected_cosine_distance", "concentration_inverse"}
    loc = _unit(torch.randn(4, 1, 6))
    q = PowerSpherical(loc, torch.tensor([[0.5, 2.0, 10.0]]))
    assert q.batch_shape == (4, 3) and q.event_shape == (6,)
    assert q.sample((2,)).shape == (2, 4, 3, 6)
    assert q.log_prob(_unit(torch.randn(4, 3, 6))).shape == (4, 3)
    assert q.entropy().shape == (4, 3) and q.mean.shape == (4, 3, 6)
    u = q.uncertainty()
    assert u.shape == (4, 3) and ((u > 0) & (u < 1)).all()
    assert (u[:, 0] > u[:, 1]).all() and (u[:, 1] > u[:, 2]).all()  # larger κ, less uncertain
    torch.testing.assert_close(q.uncertainty("concentration_inverse")[0], torch.tensor([2.0, 0.5, 0.1]))
    with pytest.raises(ValueError, match="concentration_inverse"):
        q.uncertainty("nope")
    qe = PowerSpherical(loc[0, 0], torch.tensor(2.0)).expand((5, 2))
    assert qe.batch_shape == (5, 2) and qe.sample((3,)).shape == (3, 5, 2, 6)
    assert qe.log_prob(qe.sample()).shape == (5, 2) and qe.entropy().shape == (5, 2)
    with pytest.raises(ValueError):
        PowerSpherical(torch.ones(3), torch.tensor(1.0), validate_args=True)  # loc not unit norm
    with pytest.raises(ValueError):
        PowerSpherical(_unit(torch.randn(3)), torch.tensor(-1.0), validate_args=True)
    with pytest.raises(ValueError):
        PowerSpherical(torch.ones(1), torch.tensor(1.0))
