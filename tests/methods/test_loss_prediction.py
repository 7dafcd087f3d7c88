"""Loss prediction (Kirchhof et al. 2024) for every contrastive method: per-sample losses, a predictor that
leaves the backbone untouched and learns, and the evaluation-facing ``extra_uncertainty`` hook."""

import copy

import pytest
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from torch import nn

from probssl.config import load_config
from probssl.losses import info_nce, nt_xent, supcon
from probssl.methods import create_method
from probssl.methods.base import LossPredictor, Method, loss_order_hinge

SHAPE = (1, 8, 8)
CONTRASTIVE = ["simclr", "supcon", "vsimclr", "vsupcon", "mcinfonce", "scl"]
LABELS = torch.tensor([0, 1, 2, 0, 1, 2, 3, 3])


def _method(name, *extra):
    overrides = [f"method.name={name}", "model.width=0.25", "model.embed_dim=8", "model.head_hidden_dim=32"]
    overrides += ["method.latent_dim=16"] if name == "scl" else []
    overrides += ["method.num_samples=4"] if name == "mcinfonce" else []
    torch.manual_seed(0)
    return create_method(load_config(overrides=[*overrides, *extra]), SHAPE)


def test_per_anchor_reductions_average_to_the_losses():
    z = F.normalize(torch.randn(3, 8, 5), dim=-1)
    assert torch.equal(info_nce(z, 0.3), info_nce(z, 0.3, reduction="mean"))  # the default path is unchanged
    torch.testing.assert_close(info_nce(z, 0.3, reduction="none").mean(), info_nce(z, 0.3))
    torch.testing.assert_close(info_nce(z[:2], 0.3, reduction="none").mean(), nt_xent(z[0], z[1], 0.3))
    assert nt_xent(z[0], z[1], 0.3, reduction="none").shape == (16,)
    labels = torch.tensor([0, 0, 1, 1, 2, 3, 3, 3])  # label 2 has no positive
    per = supcon(z[0], labels, 0.2, reduction="none")
    assert per.shape == (8,) and torch.isnan(per[4]) and torch.isfinite(per[[0, 1, 2, 3, 5, 6, 7]]).all()
    torch.testing.assert_close(per.nanmean(), supcon(z[0], labels, 0.2))
    with pytest.raises(ValueError, match="reduction"):
        info_nce(z, 0.3, reduction="sum")


@pytest.mark.parametrize("name", CONTRASTIVE)
@pytest.mark.parametrize("v", [2, 3])
def test_per_sample_loss_mean_equals_the_method_loss(name, v):
    method = _method(name)
    views = torch.rand(v, 8, *SHAPE)
    torch.manual_seed(1)
    loss = sum(method(views, LABELS).values())
    torch.manual_seed(1)  # the same posterior draws
    per = method.per_sample_loss(views, LABELS)
    assert per.shape == (8,) and torch.isfinite(per).all()
    torch.testing.assert_close(per.mean(), loss, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", CONTRASTIVE)
def test_backbone_gradients_and_state_are_unchanged_by_the_predictor(name):
    plain = _method(name)
    with_predictor = copy.deepcopy(plain)
    with_predictor.attach_loss_predictor(hidden_dim=16)
    views = torch.rand(2, 8, *SHAPE)
    results = []
    for method in (plain, with_predictor):
        torch.manual_seed(2)
        terms = method(views, LABELS)
        sum(terms.values()).backward()
        results.append((terms, dict(method.named_parameters()), dict(method.named_buffers())))
    (terms_a, params_a, buffers_a), (terms_b, params_b, buffers_b) = results
    assert set(terms_b) == {*terms_a, "loss_prediction"}
    for key in terms_a:
        assert torch.equal(terms_a[key], terms_b[key]), key
    for key, p in params_a.items():  # backbone and heads: bit-identical gradients
        assert p.grad is None and params_b[key].grad is None or torch.equal(p.grad, params_b[key].grad), key
    for key, b in buffers_a.items():  # the extra forward pass leaves BatchNorm statistics alone
        assert torch.equal(b, buffers_b[key]), key
    predictor_grads = [p.grad for p in with_predictor.loss_predictor.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in predictor_grads)


class _ToyMethod(Method):
    """Features = the flattened image; each image's loss = 3 * (mean pixel)^2, a function of the input."""

    name = "toy-loss"

    def __init__(self):
        backbone = nn.Flatten()
        backbone.feature_dim = 64
        super().__init__(backbone)

    def per_sample_loss(self, views, labels=None):
        feats = self.encode_views(views)  # [V, N, 64]
        return 3 * feats.mean(-1).pow(2).mean(0)

    def loss_terms(self, views, labels=None):
        return {"toy": self.per_sample_loss(views).mean()}


@pytest.mark.parametrize("objective", ["order", "mse"])
def test_the_predictor_learns_an_input_dependent_loss(objective):
    torch.manual_seed(0)
    method = _ToyMethod()
    method.attach_loss_predictor(hidden_dim=32, objective=objective)
    optimizer = torch.optim.Adam(method.loss_predictor.parameters(), lr=3e-3)
    for _ in range(300):
        views = torch.rand(2, 64, 1, 8, 8) * torch.rand(1, 64, 1, 1, 1)  # images of varying brightness
        optimizer.zero_grad()
        method(views)["loss_prediction"].backward()
        optimizer.step()
    test = torch.rand(256, 1, 8, 8) * torch.rand(256, 1, 1, 1)
    predicted = method.extra_uncertainty(test)["predicted_loss"]
    true = method.per_sample_loss(test[None])
    assert spearmanr(predicted.numpy(), true.numpy()).statistic > 0.9
    if objective == "mse":  # only squared error learns the loss values, not just their order
        assert (predicted - true).abs().mean() < 0.1 * true.mean()


@pytest.mark.parametrize("name", CONTRASTIVE)
def test_config_attaches_the_predictor_and_exposes_predicted_loss(name):
    method = _method(name, "method.loss_prediction=true")
    assert isinstance(method.loss_predictor, LossPredictor) and method.loss_predictor.objective == "order"
    assert method.extra_uncertainty_kinds() == ["predicted_loss"]
    assert set(method.extra_uncertainty_descriptions()) == {"predicted_loss"}
    method.eval()
    scores = method.extra_uncertainty(torch.rand(5, *SHAPE))
    assert set(scores) == {"predicted_loss"} and scores["predicted_loss"].shape == (5,)
    assert (scores["predicted_loss"] > 0).all()
    assert "predicted_loss" in method.uncertainty_kinds()  # the method-level scores include the extra ones
    fresh = _method(name, "method.loss_prediction=true")
    fresh.load_state_dict(method.state_dict())  # the predictor is part of the checkpoint


def test_off_by_default_and_objective_option():
    method = _method("simclr")
    assert method.loss_predictor is None and method.extra_uncertainty(torch.rand(2, *SHAPE)) == {}
    assert method.extra_uncertainty_kinds() == [] and "loss_prediction" not in method(torch.rand(2, 4, *SHAPE))
    mse = _method("vsimclr", "method.loss_prediction=true", "method.loss_prediction_objective=mse")
    assert mse.loss_predictor.objective == "mse"
    vae = create_method(load_config(overrides=["method.name=vae", "model.width=0.25"]), SHAPE)
    with pytest.raises(ValueError, match="per-sample loss"):
        vae.attach_loss_predictor()


def test_loss_order_hinge_known_answer():
    pred = torch.tensor([1.0, 0.0, 0.0, 0.05, 7.0])  # the odd last sample is left out
    target = torch.tensor([2.0, 1.0, 1.0, 3.0, 0.0])
    # pair 1 ordered right by 1 > gap: 0; pair 2 right by 0.05 < gap: 0.05
    assert loss_order_hinge(pred, target).item() == pytest.approx(0.025)
    assert loss_order_hinge(-pred, target).item() == pytest.approx((1.1 + 0.15) / 2)
