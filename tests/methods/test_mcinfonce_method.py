"""The MCInfoNCE method: its loss is probssl.losses.mc_infonce of its posteriors, kappa and (optionally)
the temperature learn, and its presets load with vsimclr's budget."""

import math

import pytest
import torch

from probssl.config import load_config, load_preset
from probssl.distributions import PowerSpherical, VonMisesFisher
from probssl.losses import mc_infonce
from probssl.methods import create_method
from probssl.methods.mcinfonce import MCInfoNCE

SHAPE = (1, 8, 8)


def _method(*extra):
    overrides = ["method.name=mcinfonce", "model.width=0.25", "model.embed_dim=8", "model.head_hidden_dim=32"]
    torch.manual_seed(0)
    return create_method(load_config(overrides=[*overrides, "method.num_samples=8", *extra]), SHAPE)


@pytest.mark.parametrize("family", ["vmf", "power-spherical"])
@pytest.mark.parametrize("v", [2, 3])
def test_loss_equals_mc_infonce_on_the_same_draws(family, v):
    method = _method(f"method.posterior_family={family}", "method.temperature=0.2")
    views = torch.rand(v, 10, *SHAPE)
    torch.manual_seed(3)
    terms = method(views)
    assert set(terms) == {"mc_infonce"}  # the paper has no regulariser
    torch.manual_seed(3)  # the backbone draws no random numbers: the posteriors' draws are the same
    with torch.no_grad():
        direction, kappa = method.forward_head(method.encode_views(views))
        family_class = VonMisesFisher if family == "vmf" else PowerSpherical
        expected = mc_infonce(family_class(direction, kappa), num_samples=8, temperature=0.2)
    torch.testing.assert_close(terms["mc_infonce"].detach(), expected)
    assert isinstance(method.posterior(views[0]), family_class)


def test_kappa_gradients_flow():
    method = _method()
    kappa_seen = []
    method.head.register_forward_hook(lambda module, args, out: kappa_seen.append(out.kappa))
    loss = method(torch.rand(2, 12, *SHAPE))["mc_infonce"]
    kappa_seen[0].retain_grad()
    loss.backward()
    grad = kappa_seen[0].grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    kappa_row = method.head.out.weight.grad[-1]  # the head's kappa output
    assert torch.isfinite(kappa_row).all() and kappa_row.abs().sum() > 0
    assert method.backbone.parameters().__next__().grad.abs().sum() > 0


def test_learn_temperature():
    fixed = _method()
    assert "log_kappa_pos" not in dict(fixed.named_parameters()) and "log_kappa_pos" in dict(fixed.named_buffers())
    assert fixed.temperature.item() == pytest.approx(1 / 16)  # official README: kappa_pos = 16
    method = _method("method.learn_temperature=true", "method.temperature=0.5")
    assert isinstance(method.log_kappa_pos, torch.nn.Parameter)
    assert method.temperature.item() == pytest.approx(0.5)
    optimizer = torch.optim.SGD([method.log_kappa_pos], lr=0.1)
    method(torch.rand(2, 12, *SHAPE))["mc_infonce"].backward()
    assert method.log_kappa_pos.grad is not None and method.log_kappa_pos.grad != 0
    optimizer.step()
    assert method.temperature.item() != pytest.approx(0.5) and method.temperature.item() > 0


def test_defaults_and_representation():
    config = load_config(overrides=["method.name=mcinfonce"])
    assert config.method.num_samples == 128 and config.method.posterior_family == "vmf"
    assert not config.method.learn_temperature and config.method.temperature == pytest.approx(1 / 16)
    method = _method().eval()
    x = torch.rand(5, *SHAPE)
    assert MCInfoNCE.default_representation == "backbone"
    assert method.represent(x).shape == (5, method.backbone.feature_dim)
    assert method.uncertainty_kinds()[0] == "expected_cosine_distance"
    kappa = method.posterior(x).concentration
    assert ((kappa - 8).abs() < 0.2 * 8).all()  # SphericalHead starts at kappa ~ d


@pytest.mark.parametrize("data", ["digits", "mnist", "fashion-mnist"])
def test_presets_load_and_mirror_vsimclr(data):
    config, reference = load_preset(f"mcinfonce-{data}"), load_preset(f"vsimclr-{data}")
    assert config.method.name == "mcinfonce"
    for section in ("data", "augment", "model", "train"):
        assert getattr(config, section) == getattr(reference, section), section
    size = 8 if data == "digits" else 28
    method = create_method(config, (1, size, size))
    method.num_samples = 2  # keep the test fast
    loss = method(torch.rand(2, 6, 1, size, size))["mc_infonce"]
    assert torch.isfinite(loss) and loss > 0


def test_per_sample_loss_is_the_loss_per_image():
    method = _method()
    views = torch.rand(3, 8, *SHAPE)
    torch.manual_seed(5)
    loss = method(views)["mc_infonce"]
    torch.manual_seed(5)
    per = method.per_sample_loss(views)
    assert per.shape == (8,)
    torch.testing.assert_close(per.mean(), loss, rtol=1e-5, atol=1e-6)
    assert math.isfinite(per.sum().item())
