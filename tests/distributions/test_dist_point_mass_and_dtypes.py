"""PointMass behaviour, and dtype preservation (float32/float64) across every distribution."""

import pytest
import torch

from probssl.distributions import (
    KL_ESTIMATORS,
    DiagonalNormal,
    HypersphericalUniform,
    PointMass,
    ProjectedNormal,
    StraightThroughBernoulli,
    kl_bernoulli_uniform,
    kl_diagonal_normal_standard,
    kl_projected_normal_uniform,
)


def test_point_mass():
    v = torch.randn(3, 5, requires_grad=True)
    p = PointMass(v)
    assert torch.equal(p.rsample(), v)
    s = p.rsample((4,))
    assert s.shape == (4, 3, 5) and torch.equal(s, v.expand(4, 3, 5))
    s.sum().backward()
    torch.testing.assert_close(v.grad, torch.full((3, 5), 4.0))
    assert torch.equal(p.uncertainty(), torch.zeros(3))
    assert torch.equal(p.mean, v) and torch.equal(p.variance, torch.zeros(3, 5))
    assert not p.sample().requires_grad
    with pytest.raises(NotImplementedError, match="density"):
        p.log_prob(v)
    with pytest.raises(NotImplementedError):
        p.entropy()
    assert p.expand((2, 3)).rsample().shape == (2, 3, 5)


def _dists(dtype):
    loc = torch.randn(4, 6, dtype=dtype)
    scale = torch.rand(4, 6, dtype=dtype) + 0.2
    return [
        ProjectedNormal(loc, scale),
        HypersphericalUniform(6, batch_shape=(4,), dtype=dtype),
        DiagonalNormal(loc, scale),
        StraightThroughBernoulli(loc, 0.5),
        PointMass(loc),
    ]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_all_distributions_keep_dtype(dtype):
    for dist in _dists(dtype):
        x = dist.rsample((2,))
        assert x.dtype == dtype, type(dist)
        assert x.shape == (2, 4, 6)
        assert dist.mean_direction.dtype == dtype
        for kind in dist.uncertainty_kinds():
            u = dist.uncertainty(kind)
            assert u.dtype == dtype and u.shape == (4,), (type(dist), kind)
        if not isinstance(dist, PointMass):
            lp = dist.log_prob(x)
            assert lp.dtype == dtype and lp.shape == (2, 4) and torch.isfinite(lp).all(), type(dist)
            assert dist.entropy().dtype == dtype
    loc = torch.randn(4, 6, dtype=dtype)
    scale = torch.rand(4, 6, dtype=dtype) + 0.2
    for est in KL_ESTIMATORS:
        assert kl_projected_normal_uniform(loc, scale, est).dtype == dtype
    assert kl_diagonal_normal_standard(loc, scale).dtype == dtype
    assert kl_bernoulli_uniform(loc).dtype == dtype


def test_projected_normal_float32_matches_float64():
    loc = torch.randn(64, 128, dtype=torch.float64) * 3
    scale = torch.rand(64, 128, dtype=torch.float64) + 0.05
    q64 = ProjectedNormal(loc, scale)
    z = q64.sample()
    lp64 = q64.log_prob(z)
    lp32 = ProjectedNormal(loc.float(), scale.float()).log_prob(z.float())
    # float32 error is a few ulps of the summed magnitudes (Σ log σ, d log a ~ 10²–10³)
    torch.testing.assert_close(lp32.double(), lp64, rtol=1e-5, atol=5e-3)
