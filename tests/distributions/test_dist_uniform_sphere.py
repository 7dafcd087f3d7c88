"""HypersphericalUniform: areas, samples, entropy, shapes."""

import math

import pytest
import torch

from probssl.distributions import HypersphericalUniform, log_sphere_area


def test_log_prob_matches_known_areas():
    z2 = torch.tensor([[1.0, 0.0], [0.6, -0.8]], dtype=torch.float64)
    torch.testing.assert_close(
        HypersphericalUniform(2, dtype=torch.float64).log_prob(z2),
        torch.full((2,), -math.log(2 * math.pi), dtype=torch.float64),
    )
    z3 = torch.tensor([0.0, 0.6, 0.8], dtype=torch.float64)
    assert HypersphericalUniform(3, dtype=torch.float64).log_prob(z3).item() == pytest.approx(-math.log(4 * math.pi))
    # S^3 has area 2π²
    assert HypersphericalUniform(4).log_prob(torch.tensor([1.0, 0, 0, 0])).item() == pytest.approx(
        -math.log(2 * math.pi**2), rel=1e-6
    )


@pytest.mark.parametrize("d", [2, 3, 50, 512])
def test_samples_unit_norm_and_isotropic(d):
    u = HypersphericalUniform(d, dtype=torch.float64)
    z = u.rsample((4000,))
    assert z.shape == (4000, d)
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(4000, dtype=torch.float64))
    # E[z] = 0 and E[z zᵀ] = I/d: check the mean and the first coordinate's second moment
    assert (z.mean(0).abs() < 5 / math.sqrt(4000 * d)).all()
    assert abs((z[:, 0] ** 2).mean().item() - 1 / d) < 6 * math.sqrt(2 / (d * d) / 4000) + 1e-3 / d


def test_entropy_is_log_area_and_shapes():
    u = HypersphericalUniform(7, batch_shape=(2, 3))
    assert u.batch_shape == (2, 3) and u.event_shape == (7,)
    torch.testing.assert_close(u.entropy(), torch.full((2, 3), log_sphere_area(7)))
    assert u.sample((5,)).shape == (5, 2, 3, 7)
    assert u.log_prob(u.sample()).shape == (2, 3)
    assert u.mean.shape == (2, 3, 7) and (u.mean == 0).all()
    assert torch.isinf(u.uncertainty()).all() and u.uncertainty().shape == (2, 3)
    e = HypersphericalUniform(7).expand((4,))
    assert e.batch_shape == (4,) and e.sample().shape == (4, 7)


def test_validation():
    u = HypersphericalUniform(3)
    with pytest.raises(ValueError):
        u.log_prob(torch.tensor([1.0, 1.0, 0.0]))
    with pytest.raises(ValueError):
        HypersphericalUniform(1)
