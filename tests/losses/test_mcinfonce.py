"""MCInfoNCE: deterministic limit = info_nce, known answers, the two estimators, gradients, shapes."""

import math

import pytest
import torch
import torch.nn.functional as F

from probssl.distributions import PowerSpherical, VonMisesFisher
from probssl.losses import info_nce, mc_infonce, mc_infonce_from_samples


def _views(v=2, n=8, d=5, dtype=torch.float64):
    return F.normalize(torch.randn(v, n, d, dtype=dtype), dim=-1)


@pytest.mark.parametrize("v", [2, 3])
@pytest.mark.parametrize("estimator", ["log_mean_exp", "mean"])
def test_identical_draws_equal_info_nce(v, estimator):
    z = _views(v)
    got = mc_infonce_from_samples(z[None].expand(6, -1, -1, -1), 0.3, estimator=estimator)
    torch.testing.assert_close(got, info_nce(z, 0.3))


@pytest.mark.parametrize("family", [VonMisesFisher, PowerSpherical])
def test_kappa_to_infinity_recovers_info_nce(family):
    z = _views(2, 16, 8)
    q = family(z, torch.full((2, 16), 1e9, dtype=torch.float64))
    got = mc_infonce(q, num_samples=4, temperature=0.2)
    # draws deviate from the means by O(sqrt(d/κ)) ≈ 1e-4, the loss by that over τ
    assert got.item() == pytest.approx(info_nce(z, 0.2).item(), abs=5e-3)
    assert got.item() != info_nce(z, 0.2).item()  # really sampled


def test_sequence_of_view_posteriors_is_the_same_as_one_stacked_posterior():
    z, k = _views(2, 6, 4), torch.rand(2, 6, dtype=torch.float64) * 10 + 1
    torch.manual_seed(1)
    a = mc_infonce(VonMisesFisher(z, k), num_samples=3)
    torch.manual_seed(1)
    stacked = VonMisesFisher(z, k).rsample((3,))
    b = mc_infonce_from_samples(stacked, 0.5)
    torch.testing.assert_close(a, b)
    c = mc_infonce([PowerSpherical(z[0], k[0]), PowerSpherical(z[1], k[1])], num_samples=3)
    assert c.shape == () and torch.isfinite(c)


def test_known_answer_two_draws():
    """N = 2, V = 2, d = 4, τ = 0.5. Draw 0: each image's views coincide and the images are
    orthogonal, so p₀ = e^{1/τ}/(e^{1/τ} + 2) for every anchor. Draw 1: all four embeddings equal,
    p₁ = 1/3. The paper's estimator is -log((p₀ + p₁)/2); the naive one -(log p₀ + log p₁)/2."""
    tau = 0.5
    e = torch.eye(4, dtype=torch.float64)
    draw0 = torch.stack([e[:2], e[:2]])  # [V, N, d]
    draw1 = e[0].expand(2, 2, 4)
    samples = torch.stack([draw0, draw1])
    p0, p1 = math.exp(1 / tau) / (math.exp(1 / tau) + 2), 1 / 3
    assert mc_infonce_from_samples(samples, tau).item() == pytest.approx(-math.log((p0 + p1) / 2), rel=1e-12)
    naive = mc_infonce_from_samples(samples, tau, estimator="mean").item()
    assert naive == pytest.approx(-(math.log(p0) + math.log(p1)) / 2, rel=1e-12)
    assert mc_infonce_from_samples(draw1[None], tau).item() == pytest.approx(math.log(3), rel=1e-12)


def test_log_mean_exp_is_below_the_mean_of_losses():
    """Jensen: -log E[p] ≤ E[-log p] for every anchor, hence for the mean."""
    s = F.normalize(torch.randn(8, 2, 10, 6, dtype=torch.float64), dim=-1)
    assert mc_infonce_from_samples(s, 0.4) <= mc_infonce_from_samples(s, 0.4, estimator="mean")


def test_matches_a_loop_oracle():
    s = F.normalize(torch.randn(3, 2, 4, 5, dtype=torch.float64), dim=-1)
    tau, (S, V, N, _) = 0.7, s.shape
    total = 0.0
    for v in range(V):
        for i in range(N):
            ps = []
            for k in range(S):
                flat = s[k].reshape(V * N, -1)
                a = v * N + i
                pos = (1 - v) * N + i
                den = sum(math.exp(float(flat[a] @ flat[c]) / tau) for c in range(V * N) if c != a)
                ps.append(math.exp(float(flat[a] @ flat[pos]) / tau) / den)
            total += -math.log(sum(ps) / S)
    assert mc_infonce_from_samples(s, tau).item() == pytest.approx(total / (V * N), rel=1e-12)


def test_differentiable_wrt_loc_kappa_and_temperature():
    raw = torch.randn(2, 12, 8, requires_grad=True)
    log_k = torch.full((2, 12), 2.0, requires_grad=True)
    tau = torch.tensor(0.3, requires_grad=True)
    for family in (VonMisesFisher, PowerSpherical):
        loss = mc_infonce(family(F.normalize(raw, dim=-1), log_k.exp()), num_samples=5, temperature=tau)
        assert loss.shape == () and torch.isfinite(loss)
        raw.grad = log_k.grad = tau.grad = None
        loss.backward()
        for g in (raw.grad, log_k.grad, tau.grad):
            assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0


def test_shapes_dtypes_and_validation():
    s = F.normalize(torch.randn(4, 2, 6, 3), dim=-1)
    assert torch.isfinite(mc_infonce_from_samples(s.half(), 0.05))
    assert torch.isfinite(mc_infonce_from_samples(s, 1e-3))  # tiny temperature: log-softmax stays finite
    with pytest.raises(ValueError):
        mc_infonce_from_samples(s[:, :1], 0.5)  # V = 1
    with pytest.raises(ValueError, match="log_mean_exp"):
        mc_infonce_from_samples(s, 0.5, estimator="bogus")
    with pytest.raises(ValueError):
        mc_infonce(VonMisesFisher(s[0, 0], torch.ones(6)), num_samples=2)  # batch_shape [N] only
