"""MLP probe: reads out a non-linearly separable label that the linear probe cannot."""

import torch

from probssl.evaluation.mlp_probe import mlp_probe
from probssl.evaluation.probes import ProbeResult, linear_probe


def _xor(n, seed):
    """y = [x1 * x2 > 0] plus 6 irrelevant dimensions: no linear read-out beats chance."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    return x, (x[:, 0] * x[:, 1] > 0).long()


def test_mlp_beats_linear_on_xor():
    (xt, yt), (xv, yv), (xs, ys) = _xor(3000, 0), _xor(1000, 1), _xor(2000, 2)
    linear = linear_probe(xt, yt, xv, yv, xs, ys)
    mlp = mlp_probe(xt, yt, xv, yv, xs, ys, hidden=128, epochs=20, batch_size=128, lr=3e-3)
    assert isinstance(mlp, ProbeResult)
    assert linear.test_acc < 0.6
    assert mlp.test_acc > 0.9
    assert set(mlp.val_scores) == {0.0, 0.1} and mlp.selected["weight_decay"] in (0.0, 0.1)
    assert 1 <= mlp.selected["epoch"] <= 20 and mlp.val_acc == max(mlp.val_scores.values())


def test_mlp_is_seeded():
    (xt, yt), (xv, yv) = _xor(500, 0), _xor(200, 1)
    kwargs = dict(hidden=32, epochs=3, batch_size=64, seed=7)
    assert mlp_probe(xt, yt, xv, yv, xv, yv, **kwargs) == mlp_probe(xt, yt, xv, yv, xv, yv, **kwargs)
