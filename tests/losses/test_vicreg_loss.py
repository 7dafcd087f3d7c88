import math

import pytest
import torch

from probssl.losses.vicreg import vicreg_loss

A = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
B = torch.tensor([[1.0, 1.0], [1.0, 1.0], [-1.0, -1.0], [-1.0, -1.0]])


def test_hand_computed_example():
    # invariance: squared differences per row 1, 5, 5, 1 over 8 entries = 12 / 8.
    # variance: A has per-dim unbiased Var 2/3 (std < 1), B has Var 4/3 (std > 1, no hinge).
    # covariance: A's dims are uncorrelated; B's two dims have Cov 4/3, so (2 * (4/3)^2) / D = 16/9.
    raw = vicreg_loss(A, B, sim=1.0, std=1.0, cov=1.0)
    assert raw["invariance"].item() == pytest.approx(1.5)
    assert raw["variance"].item() == pytest.approx((1 - math.sqrt(2 / 3 + 1e-4)) / 2, rel=1e-6)
    assert raw["covariance"].item() == pytest.approx(16 / 9, rel=1e-6)
    weighted = vicreg_loss(A, B)  # paper coefficients 25, 25, 1
    for key, coef in (("invariance", 25.0), ("variance", 25.0), ("covariance", 1.0)):
        assert weighted[key].item() == pytest.approx(coef * raw[key].item(), rel=1e-6)


def vicreg_oracle(za, zb, sim, std, cov, eps=1e-4):
    """Loop-by-loop transcription of the paper's definitions, in float64."""
    za, zb = za.double().tolist(), zb.double().tolist()
    n, d = len(za), len(za[0])
    inv = sum((za[i][j] - zb[i][j]) ** 2 for i in range(n) for j in range(d)) / (n * d)

    def stats(z):
        mean = [sum(z[i][j] for i in range(n)) / n for j in range(d)]
        c = [
            [sum((z[i][p] - mean[p]) * (z[i][q] - mean[q]) for i in range(n)) / (n - 1) for q in range(d)]
            for p in range(d)
        ]
        hinge = sum(max(0.0, 1 - math.sqrt(c[j][j] + eps)) for j in range(d)) / d
        off = sum(c[p][q] ** 2 for p in range(d) for q in range(d) if p != q) / d
        return hinge, off

    (ha, oa), (hb, ob) = stats(za), stats(zb)
    return sim * inv, std * (ha / 2 + hb / 2), cov * (oa + ob)


def test_matches_loop_oracle_on_random_batch():
    za, zb = torch.randn(7, 5) * 0.7, torch.randn(7, 5) * 1.3 + 0.2
    got = vicreg_loss(za, zb, sim=2.0, std=3.0, cov=0.5)
    want = vicreg_oracle(za, zb, 2.0, 3.0, 0.5)
    for key, value in zip(("invariance", "variance", "covariance"), want):
        assert got[key].item() == pytest.approx(value, rel=1e-5)


def test_invariance_is_zero_for_identical_branches():
    z = torch.randn(16, 8)
    assert vicreg_loss(z, z.clone())["invariance"].item() == 0.0


def test_variance_is_zero_when_every_std_is_at_least_one():
    signs = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    z = 2 * signs  # per-dim unbiased Var 16/3: std > 1
    assert vicreg_loss(z, z, std=1.0)["variance"].item() == 0.0
    assert vicreg_loss(0.1 * z, 0.1 * z, std=1.0)["variance"].item() > 0  # collapsed scale is penalised


def test_covariance_is_zero_for_decorrelated_dims():
    # Rows of a 4x4 Hadamard matrix without its constant column: centred, orthogonal columns.
    h = torch.tensor([[1.0, 1.0, 1.0], [-1.0, 1.0, -1.0], [1.0, -1.0, -1.0], [-1.0, -1.0, 1.0]])
    assert vicreg_loss(h, h + 5.0)["covariance"].item() == pytest.approx(0.0, abs=1e-12)
    assert vicreg_loss(A, B, cov=1.0)["covariance"].item() > 0  # B's dims are correlated


def test_gradients_are_finite_for_a_collapsed_batch():
    z = torch.zeros(8, 4, requires_grad=True)
    sum(vicreg_loss(z, z).values()).backward()
    assert torch.isfinite(z.grad).all()


def test_shape_errors():
    with pytest.raises(ValueError, match="N, D"):
        vicreg_loss(torch.randn(4, 3), torch.randn(4, 2))
    with pytest.raises(ValueError, match="N >= 2"):
        vicreg_loss(torch.randn(1, 3), torch.randn(1, 3))
