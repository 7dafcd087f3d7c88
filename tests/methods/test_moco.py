"""MoCo v2: the queue loss against a direct computation, the momentum update, the queue, training on digits."""

import json

import torch
import torch.nn.functional as F

from probssl.config import load_config
from probssl.methods import create_method
from probssl.methods.moco import moco_loss
from probssl.train import Trainer


def _method(*overrides):
    torch.manual_seed(0)
    config = load_config(
        "moco-digits", overrides=["model.embed_dim=8", "model.head_hidden_dim=16", "method.queue_size=10", *overrides]
    )
    return create_method(config, (1, 8, 8))


def test_loss_is_cross_entropy_of_the_positive_against_the_queue():
    g = torch.Generator().manual_seed(0)
    q, k, queue = (F.normalize(torch.randn(s, 4, generator=g), dim=1) for s in (3, 3, 5))
    expected = torch.stack(
        [-torch.log_softmax(torch.cat([(q[i] @ k[i]).view(1), queue @ q[i]]) / 0.2, dim=0)[0] for i in range(3)]
    ).mean()
    torch.testing.assert_close(moco_loss(q, k, queue, 0.2), expected)


def test_momentum_update_and_queue_wraparound():
    method = _method("method.momentum=0.5")
    key_before = [p.clone() for p in method.key_backbone.parameters()]
    with torch.no_grad():
        for p in method.backbone.parameters():
            p.add_(1.0)
    views = torch.rand(2, 8, 1, 8, 8)
    method(views)
    keys = method._pending[0].clone()
    method.after_optimizer_step(0, 10)
    for before, key, query in zip(key_before, method.key_backbone.parameters(), method.backbone.parameters()):
        torch.testing.assert_close(key, 0.5 * before + 0.5 * query)
    assert torch.equal(method.queue[:8], keys) and int(method.queue_ptr) == 8
    method(views)
    second = method._pending[0].clone()
    method.after_optimizer_step(1, 10)
    assert torch.equal(method.queue[8:], second[:2]) and torch.equal(method.queue[:6], second[2:])
    assert int(method.queue_ptr) == 6
    assert not any(p.requires_grad for p in method.key_backbone.parameters())


def test_trains_on_digits_with_finite_decreasing_loss(tmp_path):
    config = load_config("moco-digits", overrides=["train.epochs=6", "train.progress=false", "train.log_every=1"])
    Trainer(config, tmp_path / "run").fit()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert all(v == v and v < 1e3 for v in losses)
    # the loss first RISES while real keys replace the queue's random ones (harder negatives), then falls
    peak = losses.index(max(losses))
    assert peak < len(losses) - 5 and sum(losses[-5:]) / 5 < max(losses) - 0.2
