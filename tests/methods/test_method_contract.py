"""The method contract, checked for EVERY registered method (a new method is tested the moment it registers):
finite loss terms and gradients, the posterior's family and shapes, every representation it supports, every
named uncertainty score, and a checkpoint round trip."""

import pytest
import torch

from probssl.config import load_config
from probssl.distributions import StraightThroughBernoulli
from probssl.methods import REPRESENTATIONS, create_method, list_methods
from probssl.train import TrainingState, load_checkpoint, save_checkpoint

SHAPE = (1, 8, 8)
N = 6


def _method(name: str):
    overrides = [f"method.name={name}", "model.width=0.25", "model.embed_dim=8", "model.head_hidden_dim=32"]
    if name == "scl":
        overrides.append("method.latent_dim=16")
    torch.manual_seed(0)
    return create_method(load_config(overrides=overrides), SHAPE)


@pytest.fixture(params=list_methods())
def method(request):
    return _method(request.param)


def _views(method):
    x = torch.rand(2, N, *SHAPE)
    labels = torch.tensor([0, 1, 0, 1, 2, 2]) if method.supervised else None
    return x, labels


def test_loss_terms_are_finite_scalars_with_gradients(method):
    method.train()
    views, labels = _views(method)
    terms = method(views, labels)
    assert terms and all(t.shape == () and torch.isfinite(t) for t in terms.values()), terms
    sum(terms.values()).backward()
    grads = [p.grad for p in method.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(torch.isfinite(g).all() for g in grads if g is not None)


def test_posterior_family_shapes_and_scores(method):
    method.eval()
    x = torch.rand(N, *SHAPE)
    q = method.posterior(x)
    assert isinstance(q, method.posterior_class) and q.batch_shape == (N,) and len(q.event_shape) == 1
    assert q.mean_direction.shape == (N, q.event_shape[0])
    for kind in method.uncertainty_kinds():
        u = method.uncertainty(x, kind)
        assert u.shape == (N,) and torch.isfinite(u).all(), kind
    assert method.probabilistic == (method.uncertainty_kinds() != ["zero"])


def test_every_supported_representation(method):
    method.eval()
    x = torch.rand(N, *SHAPE)
    binary = method.posterior_class is StraightThroughBernoulli
    for kind in REPRESENTATIONS:
        if kind == "bits" and not binary:
            with pytest.raises(ValueError, match="bits"):
                method.represent(x, kind)
            continue
        z = method.represent(x, kind)
        assert z.shape[0] == N and z.ndim == 2 and torch.isfinite(z).all(), kind
    assert method.represent(x, "auto").shape == method.represent(x, method.default_representation).shape


def test_checkpoint_round_trip(method, tmp_path):
    method.eval()
    x = torch.rand(N, *SHAPE)
    state = TrainingState(
        model=method.state_dict(), optimizer=None, step=1, epoch=0, batch_in_epoch=1, rng={}, config={}, extra={}
    )
    path = save_checkpoint(tmp_path, state)
    fresh = _method(method.name)
    torch.manual_seed(1)
    for p in fresh.parameters():
        p.data.add_(torch.randn_like(p))  # make sure the weights really come from the file
    fresh.load_state_dict(load_checkpoint(path).model)
    fresh.eval()
    torch.testing.assert_close(fresh.represent(x, "mean"), method.represent(x, "mean"))


def test_one_backbone_pass_makes_the_features_the_posterior_and_the_representations(method):
    """features_and_posterior runs the backbone once and gives what forward_features and posterior give apart;
    representation_from makes every representation represent makes, from them (no draw: 'sample' is left out)."""
    method.eval()
    x = torch.rand(N, *SHAPE)
    calls = []
    handle = method.backbone.register_forward_hook(lambda *_: calls.append(1))
    try:
        features, q = method.features_and_posterior(x)
    finally:
        handle.remove()
    # one pass when the posterior is made from the features (every built-in method's is); two for a plugin method
    # that overrides posterior(images) itself
    factors = type(method).posterior_factors()
    assert len(calls) == (1 if factors else 2)
    assert factors or not type(method).__module__.startswith("probssl.")
    reference = method.posterior(x)
    torch.testing.assert_close(features, method.forward_features(x))
    torch.testing.assert_close(q.mean_direction, reference.mean_direction)
    for kind in method.posterior_class.uncertainty_kinds():
        torch.testing.assert_close(q.uncertainty(kind), reference.uncertainty(kind), msg=kind)
    binary = method.posterior_class is StraightThroughBernoulli
    for kind in [k for k in REPRESENTATIONS if k != "sample" and (binary or k != "bits")]:
        torch.testing.assert_close(method.representation_from(features, q, kind), method.represent(x, kind))
