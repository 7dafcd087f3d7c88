import math

import pytest
import torch
import torch.nn.functional as F

from probssl.losses import info_nce, nt_xent, supcon


def nt_xent_oracle(z1, z2, tau):
    """Direct transcription of SimCLR's eq. (1): loops over anchors, exp/sum/log by hand."""
    z = torch.cat([z1, z2]).double()
    n2 = len(z)
    total = 0.0
    for i in range(n2):
        j = (i + n2 // 2) % n2
        denom = sum(math.exp(float(z[i] @ z[k]) / tau) for k in range(n2) if k != i)
        total += -math.log(math.exp(float(z[i] @ z[j]) / tau) / denom)
    return total / n2


def test_nt_xent_matches_oracle():
    z1, z2 = F.normalize(torch.randn(6, 5), dim=1), F.normalize(torch.randn(6, 5), dim=1)
    assert nt_xent(z1, z2, 0.3).item() == pytest.approx(nt_xent_oracle(z1, z2, 0.3), rel=1e-5)


def test_nt_xent_perfect_alignment_is_lower_than_random():
    z = F.normalize(torch.randn(32, 16), dim=1)
    assert nt_xent(z, z, 0.1) < nt_xent(z, F.normalize(torch.randn(32, 16), dim=1), 0.1)


def test_nt_xent_stable_at_tiny_temperature_and_half_precision():
    z1, z2 = F.normalize(torch.randn(64, 8), dim=1), F.normalize(torch.randn(64, 8), dim=1)
    assert torch.isfinite(nt_xent(z1, z2, 1e-3))
    assert torch.isfinite(nt_xent(z1.half(), z2.half(), 0.05))


def test_supcon_with_one_positive_per_anchor_equals_simclr():
    z1, z2 = F.normalize(torch.randn(10, 7), dim=1), F.normalize(torch.randn(10, 7), dim=1)
    labels = torch.arange(10).repeat(2)
    assert supcon(torch.cat([z1, z2]), labels, 0.5).item() == pytest.approx(nt_xent(z1, z2, 0.5).item(), rel=1e-6)


def test_supcon_l_out_oracle_and_anchors_without_positives():
    z = F.normalize(torch.randn(7, 4), dim=1).double()
    y = torch.tensor([0, 0, 1, 1, 1, 2, 3])  # classes 2 and 3 have no positive
    tau = 0.2
    losses = []
    for i in range(7):
        pos = [p for p in range(7) if p != i and y[p] == y[i]]
        if not pos:
            continue
        denom = sum(math.exp(float(z[i] @ z[a]) / tau) for a in range(7) if a != i)
        losses.append(-sum(math.log(math.exp(float(z[i] @ z[p]) / tau) / denom) for p in pos) / len(pos))
    assert supcon(z, y, tau).item() == pytest.approx(sum(losses) / len(losses), rel=1e-9)


def test_info_nce_multi_view_reduces_to_nt_xent_for_two_views():
    v = F.normalize(torch.randn(2, 9, 6), dim=-1)
    assert info_nce(v, 0.4).item() == pytest.approx(nt_xent(v[0], v[1], 0.4).item(), rel=1e-6)
    labels = torch.arange(9).repeat(2)
    assert info_nce(v, 0.4).item() == pytest.approx(supcon(v.reshape(18, -1), labels, 0.4).item(), rel=1e-6)
    four = F.normalize(torch.randn(4, 9, 6), dim=-1)
    assert torch.isfinite(info_nce(four, 0.4))


def test_gradients_flow():
    z1 = torch.randn(8, 4, requires_grad=True)
    nt_xent(F.normalize(z1, dim=1), F.normalize(torch.randn(8, 4), dim=1)).backward()
    assert z1.grad.abs().sum() > 0
