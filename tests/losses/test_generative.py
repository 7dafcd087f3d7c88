import math

import pytest
import torch
from torch.distributions import Bernoulli, Independent, MultivariateNormal, Normal, kl_divergence

from probssl.distributions import DiagonalNormal
from probssl.losses.generative import (
    bernoulli_log_likelihood,
    gaussian_entropy,
    gaussian_log_likelihood,
    kl_diagonal_normals,
    simvae_group_prior,
)

LOG_2PI = math.log(2 * math.pi)


def test_bernoulli_log_likelihood_matches_torch_bernoulli():
    logits = torch.randn(5, 1, 4, 3, dtype=torch.float64) * 3
    x = (torch.rand(5, 1, 4, 3, dtype=torch.float64) > 0.5).double()
    expected = Bernoulli(logits=logits).log_prob(x).sum((1, 2, 3))
    torch.testing.assert_close(bernoulli_log_likelihood(logits, x), expected)
    # [V, N, C, H, W] with start_dim=2 -> [V, N]
    both = bernoulli_log_likelihood(torch.stack([logits, -logits]), torch.stack([x, x]), start_dim=2)
    torch.testing.assert_close(both[1], Bernoulli(logits=-logits).log_prob(x).sum((1, 2, 3)))
    # stable for huge logits: log p(x=1 | logit=100) = -log(1 + e^-100) ~ -3.7e-44, not -inf or nan
    assert bernoulli_log_likelihood(torch.full((1, 1, 1, 1), -100.0), torch.zeros(1, 1, 1, 1)).item() == pytest.approx(
        0.0
    )


def test_gaussian_log_likelihood_matches_torch_normal():
    mean = torch.rand(4, 3, 5, 5, dtype=torch.float64)
    x = torch.rand(4, 3, 5, 5, dtype=torch.float64)
    log_var = -4.6
    expected = Normal(mean, math.exp(0.5 * log_var)).log_prob(x).sum((1, 2, 3))
    torch.testing.assert_close(gaussian_log_likelihood(mean, x, log_var), expected)
    # hand value: one pixel, x - mean = 1, log_var = 0 -> -0.5 (1 + 0 + log 2 pi)
    one = gaussian_log_likelihood(torch.zeros(1, 1, 1, 1), torch.ones(1, 1, 1, 1), 0.0)
    assert one.item() == pytest.approx(-0.5 * (1 + LOG_2PI))


def test_entropy_variants():
    loc = torch.randn(6, 4, dtype=torch.float64)
    scale = torch.rand(6, 4, dtype=torch.float64) + 0.05
    torch.testing.assert_close(gaussian_entropy(scale, "correct"), DiagonalNormal(loc, scale).entropy())
    torch.testing.assert_close(gaussian_entropy(scale), DiagonalNormal(loc, scale).entropy())
    # the release code: 0.5 * sum(2 pi * log sigma^2)
    torch.testing.assert_close(gaussian_entropy(scale, "official"), 0.5 * (2 * math.pi * torch.log(scale**2)).sum(-1))
    # hand value: sigma^2 = (e, 1) -> log sigma^2 = (1, 0) -> 0.5 * 2 pi * 1 = pi
    s = torch.tensor([[math.exp(0.5), 1.0]], dtype=torch.float64)
    assert gaussian_entropy(s, "official").item() == pytest.approx(math.pi)
    assert gaussian_entropy(s, "correct").item() == pytest.approx(1 + LOG_2PI + 0.5)
    with pytest.raises(ValueError, match="correct, official"):
        gaussian_entropy(s, "exact")


def test_group_prior_hand_computed():
    # J = 2 views, d = 1: z = (1, 3), s^2 = 0.5 -> zbar = 2, S = (1-2)^2 + (3-2)^2 = 2
    z = torch.tensor([[[1.0]], [[3.0]]], dtype=torch.float64)  # [J=2, N=1, d=1]
    s2 = 0.5
    spread_term = -2 / (2 * 0.5)  # -S / (2 s^2) = -2
    norms = -2 * 0.5 * math.log(2 * math.pi * 0.5)  # sum_j log N normaliser: -(J d / 2) log(2 pi s^2)
    gaussian = simvae_group_prior(z, s2, "gaussian", exact_marginal=False)
    assert gaussian.shape == (1,)
    assert gaussian.item() == pytest.approx(spread_term + norms - 4 / 2 - 0.5 * LOG_2PI)  # + log N(zbar=2; 0, 1)
    uniform = simvae_group_prior(z, s2, "uniform", exact_marginal=False)
    assert uniform.item() == pytest.approx(spread_term + norms)  # log p(y) = 0
    # exact marginal: ||zbar||^2 / 2 becomes ||zbar||^2 / (2 (1 + s^2 / J)) = 4 / (2 * 1.25) = 1.6
    exact = simvae_group_prior(z, s2, "gaussian", exact_marginal=True)
    const = -0.5 * (2 * LOG_2PI + 1 * math.log(0.5) + math.log(0.5 + 2))
    assert exact.item() == pytest.approx(spread_term - 1.6 + const)
    # the same from the 2x2 covariance [[s^2 + 1, 1], [1, s^2 + 1]]
    mvn = MultivariateNormal(
        torch.zeros(2, dtype=torch.float64), torch.tensor([[1.5, 1.0], [1.0, 1.5]], dtype=torch.float64)
    )
    assert exact.item() == pytest.approx(mvn.log_prob(torch.tensor([1.0, 3.0], dtype=torch.float64)).item())


@pytest.mark.parametrize("j", [2, 3, 5])
def test_exact_marginal_equals_joint_gaussian_log_density(j):
    n, d, s2 = 4, 3, 0.15
    z = torch.randn(j, n, d, dtype=torch.float64)
    # z = (z_1, ..., z_J) in R^{Jd} has covariance s^2 I + (1 1^T) kron I_d
    cov = s2 * torch.eye(j * d, dtype=torch.float64) + torch.kron(
        torch.ones(j, j, dtype=torch.float64), torch.eye(d, dtype=torch.float64)
    )
    flat = z.permute(1, 0, 2).reshape(n, j * d)
    expected = MultivariateNormal(torch.zeros(j * d, dtype=torch.float64), cov).log_prob(flat)
    torch.testing.assert_close(simvae_group_prior(z, s2, "gaussian", exact_marginal=True), expected)
    # the approximation differs from it only through the zbar term and the constants
    approx = simvae_group_prior(z, s2, "gaussian", exact_marginal=False)
    zbar2 = z.mean(0).pow(2).sum(-1)
    const_diff = (-0.5 * j * d * (LOG_2PI + math.log(s2)) - 0.5 * d * LOG_2PI) - (
        -0.5 * d * (j * LOG_2PI + (j - 1) * math.log(s2) + math.log(s2 + j))
    )
    torch.testing.assert_close(approx - expected, -0.5 * zbar2 + 0.5 * zbar2 / (1 + s2 / j) + const_diff)


def test_exact_marginal_with_flat_content_prior_integrates_y_out():
    # log int prod_j N(z_j; y, s^2) dy by quadrature over y (d = 1), J = 3
    s2 = 0.3
    z = torch.tensor([[[0.2]], [[-0.4]], [[1.1]]], dtype=torch.float64)
    y = torch.linspace(-10, 10, 200001, dtype=torch.float64)
    log_integrand = Normal(y, math.sqrt(s2)).log_prob(z.reshape(3, 1)).sum(0)
    expected = torch.log(torch.trapezoid(torch.exp(log_integrand), y))
    got = simvae_group_prior(z, s2, "uniform", exact_marginal=True)
    assert got.item() == pytest.approx(expected.item(), abs=1e-8)


def test_group_prior_rejects_bad_arguments():
    z = torch.zeros(2, 3, 4)
    with pytest.raises(ValueError, match="gaussian, uniform"):
        simvae_group_prior(z, 0.15, "laplace")
    with pytest.raises(ValueError, match="> 0"):
        simvae_group_prior(z, 0.0)
    with pytest.raises(ValueError, match=r"\[J, N, d\]"):
        simvae_group_prior(z[0], 0.15)


def test_kl_diagonal_normals_matches_torch():
    loc_q, loc_p = torch.randn(2, 7, 5, dtype=torch.float64)
    scale_q, scale_p = torch.rand(2, 7, 5, dtype=torch.float64) + 0.1
    expected = kl_divergence(Independent(Normal(loc_q, scale_q), 1), Independent(Normal(loc_p, scale_p), 1))
    torch.testing.assert_close(kl_diagonal_normals(loc_q, scale_q, loc_p, scale_p), expected)
    assert torch.equal(kl_diagonal_normals(loc_q, scale_q, loc_q, scale_q), torch.zeros(7, dtype=torch.float64))
