"""KL(ProjectedNormal ‖ uniform) estimators: sign, zero at the uniform, ordering, exactness."""

import math

import numpy as np
import pytest
import torch
from torch.distributions import kl_divergence

from probssl.distributions import (
    KL_ESTIMATORS,
    HypersphericalUniform,
    ProjectedNormal,
    kl_projected_normal_uniform,
    log_sphere_area,
)

F64 = torch.float64
NORMS = [0.0, 0.5, 2.0, 10.0]
SCALES = [0.1, 1.0, 3.0, "aniso"]


def _grid(d):
    """Batch of (loc, scale) over ‖m‖ × σ (isotropic 0.1/1/3 and one anisotropic profile)."""
    g = torch.Generator().manual_seed(d)
    direction = torch.randn(d, generator=g, dtype=F64)
    direction /= direction.norm()
    aniso = torch.exp(torch.linspace(math.log(0.3), math.log(2.0), d, dtype=F64))
    locs, scales, labels = [], [], []
    for r in NORMS:
        for s in SCALES:
            locs.append(r * direction)
            scales.append(aniso if s == "aniso" else torch.full((d,), float(s), dtype=F64))
            labels.append((r, s))
    return torch.stack(locs), torch.stack(scales), labels


@pytest.mark.parametrize("d", [2, 8, 64, 256])
def test_estimators_over_grid(d):
    loc, scale, labels = _grid(d)
    gb = kl_projected_normal_uniform(loc, scale, "gaussian-bound")
    sb = kl_projected_normal_uniform(loc, scale, "scaled-bound")
    # Monte-Carlo KL with its own standard error (exact log_prob per sample).
    n = 256
    q = ProjectedNormal(loc, scale)
    per_sample = q.log_prob(q.rsample((n,))) + log_sphere_area(d)  # [n, batch]
    mc, se = per_sample.mean(0), per_sample.std(0) / math.sqrt(n)
    mc_fn = kl_projected_normal_uniform(loc, scale, "mc", num_samples=n)

    for i, (r, s) in enumerate(labels):
        uniform = r == 0.0 and s != "aniso"
        ctx = (d, r, s, gb[i].item(), sb[i].item(), mc[i].item(), se[i].item())
        # non-negativity
        assert gb[i] >= 0 and sb[i] >= 0, ctx
        assert mc[i] >= -3 * se[i] - 1e-10, ctx
        # ordering: gaussian-bound ≥ scaled-bound ≥ KL (mc within MC error)
        assert gb[i] >= sb[i] - 1e-12 * (1 + gb[i]), ctx
        assert sb[i] >= mc[i] - 3 * se[i] - 1e-9, ctx
        # the function's mc agrees with our independent draw within MC error
        assert abs(mc_fn[i] - mc[i]) <= 5 * se[i] * math.sqrt(2) + 1e-9, ctx
        if uniform:
            # q is exactly uniform: every MC sample is 0 up to quadrature error, the scaled
            # bound is exactly 0, and the Gaussian bound is 0 only at σ = 1.
            assert per_sample[:, i].abs().max() < 1e-9, ctx
            assert sb[i].item() == 0.0, ctx
            if s == 1.0:
                assert gb[i].item() == 0.0, ctx
            else:
                expected = 0.5 * d * (s * s - 1 - math.log(s * s))
                assert gb[i].item() == pytest.approx(expected, rel=1e-12), ctx
        else:
            assert sb[i] > 0, ctx


def test_scaled_bound_closed_form_and_gaussian_bound_formula():
    g = torch.Generator().manual_seed(3)
    loc = torch.randn(5, 12, generator=g, dtype=F64)
    scale = 0.2 + torch.rand(5, 12, generator=g, dtype=F64) * 2
    var, m2 = scale**2, (loc**2).sum(-1)
    gb_ref = 0.5 * (var.sum(-1) + m2 - 12 - torch.log(var).sum(-1))
    sb_ref = 0.5 * (12 * torch.log((var.sum(-1) + m2) / 12) - torch.log(var).sum(-1))
    torch.testing.assert_close(kl_projected_normal_uniform(loc, scale, "gaussian-bound"), gb_ref)
    torch.testing.assert_close(kl_projected_normal_uniform(loc, scale, "scaled-bound"), sb_ref)
    # scaled-bound is the gaussian bound minimised over the prior variance c
    cs = np.exp(np.linspace(-4, 4, 4001))[:, None]
    vals = 0.5 * ((var.sum(-1) + m2).numpy() / cs - 12 + 12 * np.log(cs) - torch.log(var).sum(-1).numpy())
    np.testing.assert_allclose(vals.min(0), sb_ref.numpy(), rtol=1e-5, atol=1e-6)


def test_mc_estimator_matches_exact_kl_on_s2():
    """KL = ∫ q log q dz + log 4π on S² by Gauss–Legendre × trapezoid quadrature."""
    x, w = np.polynomial.legendre.leggauss(160)
    phi = np.arange(320) * (2 * np.pi / 320)
    ct, ph = np.meshgrid(x, phi, indexing="ij")
    st = np.sqrt(1 - ct**2)
    pts = torch.tensor(np.stack([st * np.cos(ph), st * np.sin(ph), ct], -1).reshape(-1, 3))
    wts = torch.tensor((w[:, None] * np.full(320, 2 * np.pi / 320)).reshape(-1))
    loc = torch.tensor([1.5, -0.5, 2.0], dtype=F64)
    scale = torch.tensor([0.5, 1.0, 1.5], dtype=F64)
    lp = ProjectedNormal(loc, scale).log_prob(pts)
    kl_exact = ((lp.exp() * lp) * wts).sum().item() + math.log(4 * math.pi)
    n = 20000
    q = ProjectedNormal(loc, scale)
    per = q.log_prob(q.rsample((n,))) + math.log(4 * math.pi)
    assert abs(per.mean().item() - kl_exact) < 4 * per.std().item() / math.sqrt(n)
    est = kl_projected_normal_uniform(loc.expand(n, 3), scale.expand(n, 3), "mc", num_samples=1)
    assert abs(est.mean().item() - kl_exact) < 4 * est.std().item() / math.sqrt(n)
    # and the bounds are above it
    assert kl_projected_normal_uniform(loc, scale, "scaled-bound") > kl_exact
    assert kl_projected_normal_uniform(loc, scale, "gaussian-bound") > kl_exact


@pytest.mark.parametrize("estimator", KL_ESTIMATORS)
def test_normalize_divides_by_d_exactly(estimator):
    loc = torch.randn(6, 10, dtype=F64)
    scale = torch.rand(6, 10, dtype=F64) + 0.5
    torch.manual_seed(5)
    a = kl_projected_normal_uniform(loc, scale, estimator)
    torch.manual_seed(5)
    b = kl_projected_normal_uniform(loc, scale, estimator, normalize=True)
    assert torch.equal(b, a / 10)


@pytest.mark.parametrize("estimator", KL_ESTIMATORS)
def test_estimators_are_differentiable_and_batched(estimator):
    loc = torch.randn(3, 4, 16, dtype=F64, requires_grad=True)
    scale = (torch.rand(3, 4, 16, dtype=F64) + 0.3).requires_grad_()
    kl = kl_projected_normal_uniform(loc, scale, estimator, num_samples=4)
    assert kl.shape == (3, 4)
    kl.sum().backward()
    assert torch.isfinite(loc.grad).all() and torch.isfinite(scale.grad).all()
    assert scale.grad.abs().sum() > 0


def test_scaled_bound_gradient_points_towards_uniform():
    loc = torch.tensor([[2.0, 0.0, 0.0, 0.0]], requires_grad=True)
    scale = torch.tensor([[0.5, 1.0, 1.0, 1.0]], requires_grad=True)
    kl_projected_normal_uniform(loc, scale).sum().backward()
    assert loc.grad[0, 0] > 0  # shrinking ‖m‖ lowers the bound
    assert scale.grad[0, 0] < 0  # equalising σ lowers it


def test_unknown_estimator_lists_valid_ones():
    with pytest.raises(ValueError) as err:
        kl_projected_normal_uniform(torch.zeros(2, 3), torch.ones(2, 3), "exact")
    for name in KL_ESTIMATORS:
        assert name in str(err.value)


def test_bounds_are_extreme_scale_safe():
    """No overflow / underflow for tiny or huge σ; huge ‖m‖ in float32."""
    for s in [1e-20, 1e20]:
        kl = kl_projected_normal_uniform(torch.zeros(1, 8, dtype=F64), torch.full((1, 8), s, dtype=F64))
        assert kl.item() == 0.0
    kl32 = kl_projected_normal_uniform(torch.full((1, 128), 1e3), torch.full((1, 128), 1e-3))
    assert torch.isfinite(kl32).all() and kl32.item() > 0


def test_kl_divergence_registration_points_to_estimators():
    q = ProjectedNormal(torch.zeros(3), torch.ones(3))
    with pytest.raises(NotImplementedError, match="kl_projected_normal_uniform"):
        kl_divergence(q, HypersphericalUniform(3))
    u = HypersphericalUniform(5, batch_shape=(2,))
    assert torch.equal(kl_divergence(u, HypersphericalUniform(5)), torch.zeros(2))
