"""Heads: shapes, Gaussian scale positivity and init, BatchNorm heads in eval mode with batch 1."""

import pytest
import torch
from torch import nn

from probssl.models import BernoulliHead, GaussianHead, GaussianParams, LinearHead, ProjectionHead


@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("batch_norm", [True, False])
def test_projection_head(num_layers, batch_norm):
    head = ProjectionHead(32, 64, 16, num_layers=num_layers, batch_norm=batch_norm)
    assert head(torch.randn(5, 32)).shape == (5, 16)
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    bns = [m for m in head.modules() if isinstance(m, nn.BatchNorm1d)]
    assert len(linears) == num_layers
    assert len(bns) == (num_layers - 1 if batch_norm else 0)
    if num_layers > 1:
        assert (linears[0].bias is None) == batch_norm  # bias is redundant before BN
    with pytest.raises(ValueError):
        ProjectionHead(32, 64, 16, num_layers=0)


@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_gaussian_head_shapes_and_init(num_layers):
    head = GaussianHead(32, 64, 8, num_layers=num_layers)
    out = head(torch.randn(64, 32))
    assert isinstance(out, GaussianParams)
    loc, scale = out
    assert loc.shape == scale.shape == (64, 8)
    assert (scale > 0).all()
    # initial scales sit near init_scale = 0.5 whatever the input
    if num_layers > 1:
        assert scale.min() > 0.4 and scale.max() < 0.6
    torch.testing.assert_close(scale.mean(), torch.tensor(0.5), atol=0.05, rtol=0)
    # loc keeps the default init (not shrunk)
    assert loc.std() > 0.1


def test_gaussian_scale_positive_for_extreme_preactivations():
    head = GaussianHead(16, 32, 4, min_scale=1e-4)
    with torch.no_grad():
        head.out.bias[4:] = -1e6  # softplus underflows to exactly 0
    for x in (torch.randn(8, 16), -1e4 * torch.randn(8, 16).abs(), 1e6 * torch.randn(8, 16)):
        _, scale = head(x)
        assert torch.isfinite(scale).all()
        assert (scale > 0).all() and (scale >= 1e-4).all()
    with torch.no_grad():
        head.out.bias[4:] = 1e6
    _, scale = head(torch.randn(8, 16))
    assert (scale >= 1e-4).all() and torch.isfinite(scale).all()
    head.eval()
    _, scale = head(torch.full((2, 16), -1e30))
    assert (scale >= 1e-4).all()


def test_gaussian_head_validation_and_grads():
    with pytest.raises(ValueError):
        GaussianHead(4, 4, 2, min_scale=0.0)
    with pytest.raises(ValueError):
        GaussianHead(4, 4, 2, min_scale=0.1, init_scale=0.05)
    head = GaussianHead(16, 32, 4, init_scale=0.2)
    loc, scale = head(torch.randn(6, 16))
    assert abs(scale.mean().item() - 0.2) < 0.05
    (loc.sum() + scale.log().sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())


def test_bn_heads_eval_mode_batch_one():
    x = torch.randn(1, 32)
    heads = [
        ProjectionHead(32, 64, 16),
        GaussianHead(32, 64, 16),
        LinearHead(32, 10, batch_norm=True),
        ProjectionHead(32, 64, 16, num_layers=3),
    ]
    for head in heads:
        head.train()(torch.randn(4, 32))  # update running stats once
        head.eval()
        with torch.no_grad():
            out = head(x)
        outs = out if isinstance(out, tuple) else (out,)
        for o in outs:
            assert o.shape[0] == 1 and torch.isfinite(o).all()


def test_bernoulli_and_linear_heads():
    assert BernoulliHead(32, 12)(torch.randn(5, 32)).shape == (5, 12)
    head = BernoulliHead(32, 12, hidden_dim=48)
    assert head(torch.randn(5, 32)).shape == (5, 12)
    assert sum(isinstance(m, nn.Linear) for m in head.modules()) == 2
    assert LinearHead(32, 10)(torch.randn(5, 32)).shape == (5, 10)
    probe = LinearHead(32, 10, batch_norm=True)
    assert probe(torch.randn(5, 32)).shape == (5, 10)
    assert not any(p.numel() == 32 for p in probe.norm.parameters())  # non-affine BN
