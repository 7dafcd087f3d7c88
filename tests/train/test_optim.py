import pytest
import torch
from torch import nn

from probssl.train import LARS, build_optimizer, match_state_layout, warmup_cosine


def test_warmup_cosine_shape():
    total, warm = 100, 10
    values = [warmup_cosine(s, total, warm) for s in range(total)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert values[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[10:], values[11:]))  # monotone decay after warm-up
    assert warmup_cosine(total, total, warm, min_ratio=0.1) == pytest.approx(0.1)
    assert warmup_cosine(55, total, warm) == pytest.approx(0.5, abs=1e-9)  # half-way through the cosine


def test_weight_decay_excludes_biases_and_norms():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    opt = build_optimizer(model, "adamw", 1e-3, 0.1)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {id(model[0].weight)}


def test_lars_trust_ratio_scales_the_step():
    w = nn.Parameter(torch.full((4,), 2.0))
    opt = LARS([{"params": [w], "weight_decay": 0.0}], lr=1.0, momentum=0.0, eta=0.1)
    w.grad = torch.full((4,), 10.0)
    opt.step()
    # trust = eta * ||w|| / ||g|| = 0.1 * 4 / 20 = 0.02; step = lr * trust * g = 0.2
    assert torch.allclose(w.detach(), torch.full((4,), 1.8))


def test_lars_excluded_group_is_plain_sgd():
    b = nn.Parameter(torch.ones(3))
    opt = LARS([{"params": [b], "weight_decay": 0.5, "lars_exclude": True}], lr=0.1, momentum=0.0)
    b.grad = torch.ones(3)
    opt.step()
    assert torch.allclose(b.detach(), torch.full((3,), 0.9))


@pytest.mark.parametrize("name", ["adamw", "adam", "sgd", "lars"])
def test_each_optimizer_decreases_a_quadratic(name):
    torch.manual_seed(0)
    model = nn.Linear(5, 1)
    x, y = torch.randn(64, 5), torch.randn(64, 1)
    opt = build_optimizer(model, name, 0.05 if name != "lars" else 1.0, 0.0)
    first = None
    for _ in range(50):
        loss = (model(x) - y).pow(2).mean()
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first


def test_unknown_optimizer():
    with pytest.raises(ValueError, match="adamw, adam, sgd, lars"):
        build_optimizer(nn.Linear(2, 2), "adamax", 1.0, 0.0)


@pytest.mark.parametrize("name", ["adamw", "adam", "sgd"])
def test_reloaded_state_of_channels_last_parameters_updates_like_the_unfused_reference(name):
    """A checkpoint stores NCHW moments; fused CPU Adam pairs them with a channels-last parameter in
    memory order, so without match_state_layout the resumed update uses other elements' moments."""

    def make():
        conv = nn.Conv2d(3, 4, 3).to(memory_format=torch.channels_last)
        with torch.no_grad():
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=torch.Generator().manual_seed(0)))
        return conv

    def grad(seed):
        return torch.randn(4, 3, 3, 3, generator=torch.Generator().manual_seed(seed))

    results = []
    for reload in (False, True):
        conv = make()
        opt = build_optimizer(conv, name, lr=0.1, weight_decay=0.0, momentum=0.9, eps=1e-8)
        conv.weight.grad = grad(1).contiguous(memory_format=torch.channels_last)
        opt.step()
        if reload:  # what a checkpoint round trip does: every state tensor comes back contiguous
            state = opt.state_dict()
            for per_param in state["state"].values():
                for key, value in per_param.items():
                    if isinstance(value, torch.Tensor) and value.ndim == 4:
                        per_param[key] = value.contiguous()
            opt = build_optimizer(conv, name, lr=0.1, weight_decay=0.0, momentum=0.9, eps=1e-8)
            opt.load_state_dict(state)
            match_state_layout(opt)
        conv.weight.grad = grad(2).contiguous(memory_format=torch.channels_last)
        opt.step()
        results.append(conv.weight.detach().clone())
    torch.testing.assert_close(results[1], results[0], rtol=1e-6, atol=1e-7)
