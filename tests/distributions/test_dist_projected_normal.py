"""ProjectedNormal: normalisation, exactness of log_prob, limits, gradients, sampling."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from probssl.distributions import HypersphericalUniform, ProjectedNormal, log_sphere_area

F64 = torch.float64


def _unit(v):
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True)


# ----------------------------------------------------------------------------- normalisation
S1_CASES = [  # (loc, scale) on S^1, incl. anisotropic and near-uniform
    ([0.0, 0.0], [1.0, 1.0]),
    ([1.0, 0.5], [1.0, 1.0]),
    ([3.0, -2.0], [0.5, 2.0]),
    ([-0.2, 0.1], [0.3, 3.0]),
    ([10.0, 0.0], [1.0, 1.0]),
    ([0.0, 0.0], [0.2, 1.5]),
]


@pytest.mark.parametrize("loc,scale", S1_CASES)
def test_density_integrates_to_one_on_circle(loc, scale):
    # Periodic trapezoid rule in the angle: spectrally accurate for a smooth density.
    theta = torch.arange(4096, dtype=F64) * (2 * math.pi / 4096)
    z = torch.stack([theta.cos(), theta.sin()], -1)
    q = ProjectedNormal(torch.tensor(loc, dtype=F64), torch.tensor(scale, dtype=F64))
    total = q.log_prob(z).exp().sum().item() * (2 * math.pi / 4096)
    assert total == pytest.approx(1.0, abs=1e-10)


def _s2_grid(n_theta=160, n_phi=320):
    """Gauss–Legendre in cos θ × periodic trapezoid in φ: points [N, 3] and weights [N]."""
    x, w = np.polynomial.legendre.leggauss(n_theta)
    phi = np.arange(n_phi) * (2 * np.pi / n_phi)
    ct, ph = np.meshgrid(x, phi, indexing="ij")
    st = np.sqrt(1 - ct**2)
    pts = np.stack([st * np.cos(ph), st * np.sin(ph), ct], -1).reshape(-1, 3)
    wts = (w[:, None] * np.full(n_phi, 2 * np.pi / n_phi)[None, :]).reshape(-1)
    return torch.tensor(pts), torch.tensor(wts)


S2_CASES = [
    ([0.0, 0.0, 0.0], [1.0, 1.0, 1.0]),
    ([0.6, -0.3, 0.8], [1.0, 1.0, 1.0]),
    ([2.0, 1.0, -1.5], [0.7, 1.2, 0.4]),
    ([0.0, 0.0, 0.0], [0.3, 1.0, 2.5]),
    ([4.0, 3.0, 5.0], [1.0, 1.0, 1.0]),
]


@pytest.mark.parametrize("loc,scale", S2_CASES)
def test_density_integrates_to_one_on_s2(loc, scale):
    pts, wts = _s2_grid()
    q = ProjectedNormal(torch.tensor(loc, dtype=F64), torch.tensor(scale, dtype=F64))
    total = (q.log_prob(pts).exp() * wts).sum().item()
    assert total == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("d", [16, 64])
def test_density_normalised_in_high_dimension_by_importance_sampling(d):
    """E_{z~Unif}[q(z)]·A_{d-1} = 1 and E_{z~q}[1/(A q(z))] = 1, within 4 standard errors."""
    g = torch.Generator().manual_seed(1)
    loc = 0.8 * torch.randn(d, generator=g, dtype=F64) / math.sqrt(d)
    spread = 2.4 / math.sqrt(d)  # anisotropy shrinking with d keeps the IS variance bounded
    scale = 1 - spread / 2 + spread * torch.rand(d, generator=g, dtype=F64)
    q = ProjectedNormal(loc, scale)
    log_a = log_sphere_area(d)
    n = 20000
    z_unif = HypersphericalUniform(d, dtype=F64).sample((n,))
    w1 = (q.log_prob(z_unif) + log_a).exp()
    z_q = q.sample((n,))
    w2 = (-q.log_prob(z_q) - log_a).exp()
    for w in (w1, w2):
        mean, se = w.mean().item(), w.std().item() / math.sqrt(n)
        assert se < 0.03  # the check is meaningful
        assert abs(mean - 1.0) < 4 * se, (mean, se)


def test_uniform_special_case_is_exact_in_every_dimension():
    """m = 0 with isotropic σ projects to the uniform: log p = -log A_{d-1} for any σ, z."""
    for d in [2, 3, 17, 128, 512]:
        for s in [0.05, 1.0, 30.0]:
            q = ProjectedNormal(torch.zeros(d, dtype=F64), torch.full((d,), s, dtype=F64))
            z = _unit(torch.randn(5, d, dtype=F64))
            torch.testing.assert_close(
                q.log_prob(z), torch.full((5,), -log_sphere_area(d), dtype=F64), rtol=0, atol=1e-11
            )


# ----------------------------------------------------------------------------- exactness
def radial_oracle(z, loc, scale):
    """log ∫_0^∞ N(s z; m, diag σ²) s^{d-1} ds with scipy.quad (brute force along the ray)."""
    d = len(z)

    def g(s):
        return stats.norm.logpdf(s * z, loc, scale).sum() + (d - 1) * math.log(s)

    # Peak of the (log-concave) integrand, used only as breakpoint / window centre.
    a, b = np.sum(z * z / scale**2), np.sum(z * loc / scale**2)
    s0 = (b + math.sqrt(b * b + 4 * a * (d - 1))) / (2 * a)
    g0 = g(s0)
    width = 1 / math.sqrt(a + (d - 1) / s0**2)
    lo, hi = max(0.0, s0 - 40 * width), s0 + 40 * width
    val, _ = integrate.quad(
        lambda s: math.exp(g(s) - g0) if s > 0 else 0.0, lo, hi, points=[s0], epsabs=0.0, epsrel=1e-12, limit=400
    )
    return g0 + math.log(val)


@pytest.mark.parametrize("d", [3, 10, 64])
def test_log_prob_matches_brute_force_radial_integration(d):
    g = torch.Generator().manual_seed(d)
    loc = torch.randn(d, generator=g, dtype=F64) * 2
    scale = 0.3 + torch.rand(d, generator=g, dtype=F64) * 2
    q = ProjectedNormal(loc, scale)
    z = torch.cat([_unit(torch.randn(3, d, generator=g, dtype=F64)), q.sample((2,)), _unit(loc)[None]])
    got = q.log_prob(z)
    for i in range(z.shape[0]):
        ref = radial_oracle(z[i].numpy(), loc.numpy(), scale.numpy())
        assert got[i].item() == pytest.approx(ref, abs=1e-8, rel=1e-10)


@pytest.mark.parametrize("d", [3, 16])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_high_concentration_matches_tangent_gaussian(d, dtype):
    """‖m‖/σ → ∞: z = (√(1-‖v‖²), v) near m̂ = e₁ has
        log p(z) ≈ log N(‖m‖ v; 0, diag(σ₂..σ_d)²) + (d-1) log ‖m‖
    (u ≈ m + σε tilts the direction by v ≈ σ_⊥ε_⊥/‖m‖; Jacobian ‖m‖^{d-1}). Corrections are
    O(d²/‖m‖²) and O(d ‖v‖²), ~1e-4 here. float32 must also hold: the -½mᵀΣ⁻¹m vs log I ≈ t²/2
    cancellation (both ~5·10⁵) is avoided by the residual formulation."""
    r = 1000.0
    g = torch.Generator().manual_seed(0)
    scale = torch.ones(d, dtype=F64)
    scale[1:] = 0.5 + torch.rand(d - 1, generator=g, dtype=F64)  # anisotropic tangent
    loc = torch.zeros(d, dtype=F64)
    loc[0] = r
    v = torch.randn(6, d - 1, generator=g, dtype=F64) * scale[1:] / r * 1.5
    z = torch.cat([torch.sqrt(1 - (v * v).sum(-1, keepdim=True)), v], -1)
    approx = torch.distributions.Normal(torch.zeros(d - 1, dtype=F64), scale[1:]).log_prob(v * r).sum(-1) + (
        d - 1
    ) * math.log(r)
    q = ProjectedNormal(loc.to(dtype), scale.to(dtype))
    got = q.log_prob(z.to(dtype)).double()
    tol = 2e-3 if dtype == torch.float64 else 2e-2
    torch.testing.assert_close(got, approx, rtol=0, atol=tol)


# ----------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("d", [3, 32])
def test_gradcheck_log_prob_wrt_loc_and_scale(d):
    g = torch.Generator().manual_seed(d)
    loc = (torch.randn(2, d, generator=g, dtype=F64) * 1.5).requires_grad_()
    scale = (0.4 + torch.rand(2, d, generator=g, dtype=F64)).requires_grad_()
    z = _unit(torch.randn(3, 2, d, generator=g, dtype=F64))

    def f(m, s):
        return ProjectedNormal(m, s, validate_args=False).log_prob(z)

    assert torch.autograd.gradcheck(f, (loc, scale), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_rsample_is_reparameterised_and_unit_norm():
    loc = torch.randn(4, 5, dtype=F64, requires_grad=True)
    scale = torch.rand(4, 5, dtype=F64).add(0.1).requires_grad_()
    z = ProjectedNormal(loc, scale).rsample((7,))
    assert z.shape == (7, 4, 5)
    torch.testing.assert_close(torch.linalg.vector_norm(z, dim=-1), torch.ones(7, 4, dtype=F64))
    (z[..., 0].sum()).backward()
    assert loc.grad.abs().sum() > 0 and scale.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- summaries
def test_mean_entropy_and_samples_agree_with_exact_circle_quadrature():
    """On S^1: grid E[z] and -∫p log p vs the Monte-Carlo `mean`, `entropy`, and sample moments."""
    loc = torch.tensor([1.2, -0.4], dtype=F64)
    scale = torch.tensor([0.6, 1.1], dtype=F64)
    q = ProjectedNormal(loc, scale)
    n = 8192
    theta = torch.arange(n, dtype=F64) * (2 * math.pi / n)
    zg = torch.stack([theta.cos(), theta.sin()], -1)
    lp = q.log_prob(zg)
    w = lp.exp() * (2 * math.pi / n)
    mean_exact = (w[:, None] * zg).sum(0)
    ent_exact = -(w * lp).sum()

    z = q.sample((40000,))
    se = z.std(0) / math.sqrt(z.shape[0])
    assert ((z.mean(0) - mean_exact).abs() < 4 * se).all()
    ent = q.entropy(num_samples=40000)
    se_ent = q.log_prob(z).std() / math.sqrt(40000)
    assert abs(ent.item() - ent_exact.item()) < 4 * se_ent
    # mc_mean(256) within its own MC error; `mean` has no closed form and says so
    m = q.mc_mean(256)
    assert ((m - mean_exact).abs() < 5 * z.std(0) / math.sqrt(256)).all()
    with pytest.raises(NotImplementedError, match="mc_mean"):
        _ = q.mean
    assert q.entropy().shape == ()


def test_entropy_of_uniform_case_is_log_area_exactly():
    d = 40
    q = ProjectedNormal(torch.zeros(3, d, dtype=F64), torch.full((3, d), 2.0, dtype=F64))
    torch.testing.assert_close(q.entropy(), torch.full((3,), log_sphere_area(d), dtype=F64), rtol=0, atol=1e-10)


def test_mean_direction_and_uncertainty():
    loc = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.3, 0.4]], dtype=F64)
    scale = torch.tensor([[1.0, 1.0, 1.0], [1.0, 2.0, 3.0], [0.1, 0.2, 0.2]], dtype=F64)
    q = ProjectedNormal(loc, scale)
    torch.testing.assert_close(q.mean_direction[0], torch.tensor([0.6, 0.8, 0.0], dtype=F64))
    u = q.uncertainty("angular_spread")
    assert u.shape == (3,)
    assert u[0].item() == pytest.approx(1.0 / 5.0)
    assert u[2].item() == pytest.approx(math.sqrt((0.01 + 0.04 + 0.04) / 3) / 0.5)
    assert torch.isfinite(u[1]) and u[1] > 1e10  # m = 0: huge but finite
    # more spread → more uncertain; longer mean → less uncertain
    base = ProjectedNormal(torch.ones(8), torch.full((8,), 0.5)).uncertainty("angular_spread")
    assert ProjectedNormal(torch.ones(8), torch.full((8,), 1.0)).uncertainty("angular_spread") > base
    assert ProjectedNormal(3 * torch.ones(8), torch.full((8,), 0.5)).uncertainty("angular_spread") < base


def test_named_scores_of_the_projected_normal():
    loc = torch.tensor([[3.0, 4.0, 0.0]], dtype=F64)
    scale = torch.tensor([[0.5, 1.0, 2.0]], dtype=F64)
    q = ProjectedNormal(loc, scale)
    assert ProjectedNormal.uncertainty_kinds() == ["log_det_cov", "angular_spread", "sigma_mean", "trace"]
    torch.testing.assert_close(q.uncertainty(), q.uncertainty("log_det_cov"))  # the default: VCL's log det K
    # VCL's log det K of the diagonal covariance: log(0.25 * 1 * 4) = 0
    assert q.uncertainty("log_det_cov").item() == pytest.approx(0.0, abs=1e-12)
    assert q.uncertainty("trace").item() == pytest.approx(0.25 + 1 + 4)
    assert q.uncertainty("sigma_mean").item() == pytest.approx(3.5 / 3)
    with pytest.raises(ValueError, match="log_det_cov"):
        q.uncertainty("no-such-score")


def test_shapes_broadcasting_expand_and_validation():
    q = ProjectedNormal(torch.randn(4, 1, 6), torch.tensor(0.5))
    assert q.batch_shape == (4, 1) and q.event_shape == (6,)
    z = q.sample((2,))
    assert z.shape == (2, 4, 1, 6)
    assert q.log_prob(_unit(torch.randn(3, 6))).shape == (4, 3)
    qe = q.expand((4, 5))
    assert qe.batch_shape == (4, 5) and qe.sample().shape == (4, 5, 6)
    assert qe.log_prob(qe.sample()).shape == (4, 5)
    with pytest.raises(ValueError):
        q.log_prob(torch.ones(6))  # not unit norm
    with pytest.raises(ValueError):
        ProjectedNormal(torch.zeros(3), torch.tensor([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError):
        ProjectedNormal(torch.zeros(1), torch.ones(1))  # d = 1 is not a sphere we support
