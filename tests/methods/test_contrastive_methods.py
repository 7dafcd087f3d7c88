import pytest
import torch

from probssl.config import load_config
from probssl.distributions import PointMass, ProjectedNormal
from probssl.methods import SimCLR, VSimCLR, create_method, list_methods
from probssl.models import ProjectionHead, create_backbone


def _views(n=16, v=2):
    return torch.rand(v, n, 1, 8, 8)


def test_registry_and_from_config():
    assert {"simclr", "vsimclr"} <= set(list_methods())
    for preset in ("simclr-digits", "vsimclr-digits"):
        method = create_method(load_config(preset), (1, 8, 8))
        terms = method(_views())
        assert all(t.ndim == 0 and torch.isfinite(t) for t in terms.values())


def test_unknown_method_suggests():
    with pytest.raises(ValueError, match="Did you mean 'simclr'"):  # a ConfigError when the config is built
        load_config("simclr-digits", overrides=["method.name=simclrr"])


def test_backbone_option_it_does_not_take_is_a_clear_error():
    config = load_config("simclr-digits", overrides=["model.backbone=mlp-simvae"])  # preset sets model.width
    with pytest.raises(ValueError, match=r"model.width does not apply to backbone 'mlp-simvae'"):
        create_method(config, (1, 8, 8))


def test_simclr_posterior_is_a_unit_point_mass():
    method = create_method(load_config("simclr-digits"), (1, 8, 8)).eval()
    q = method.posterior(torch.rand(5, 1, 8, 8))
    assert isinstance(q, PointMass)
    assert torch.allclose(q.mean.norm(dim=-1), torch.ones(5), atol=1e-5)
    assert torch.equal(q.uncertainty(), torch.zeros(5))


def test_vsimclr_posterior_and_kl_term():
    method = create_method(load_config("vsimclr-digits"), (1, 8, 8))
    terms = method(_views())
    assert set(terms) == {"nt_xent", "kl"} and terms["kl"] >= 0
    method.eval()
    q = method.posterior(torch.rand(5, 1, 8, 8))
    assert (
        isinstance(q, ProjectedNormal) and q.uncertainty().shape == (5,) and (q.uncertainty("angular_spread") > 0).all()
    )
    for kind, dim in (("backbone", method.backbone.feature_dim), ("mean", 64), ("direction", 64), ("sample", 64)):
        assert method.represent(torch.rand(5, 1, 8, 8), kind).shape == (5, dim)
    with pytest.raises(ValueError, match="Bernoulli"):
        method.represent(torch.rand(5, 1, 8, 8), "bits")


def test_vsimclr_with_vanishing_sigma_and_no_kl_equals_simclr(deterministic_gaussian_head):
    torch.manual_seed(0)
    backbone = create_backbone("convnet", in_channels=1, image_size=8)
    proj = ProjectionHead(backbone.feature_dim, 32, 16)
    simclr = SimCLR(backbone, proj, temperature=0.3).eval()
    vsimclr = VSimCLR(backbone, deterministic_gaussian_head(proj), temperature=0.3, beta=0.0).eval()
    views = _views()
    a, b = simclr(views), vsimclr(views)
    assert set(b) == {"nt_xent"}
    assert b["nt_xent"].item() == pytest.approx(a["nt_xent"].item(), rel=1e-5)


def test_vsimclr_kl_is_beta_weighted():
    torch.manual_seed(0)
    method = create_method(load_config("vsimclr-digits", overrides=["method.beta=2.0"]), (1, 8, 8)).eval()
    views = _views()
    two = method(views)["kl"]
    method.beta = 1.0
    assert two.item() == pytest.approx(2 * method(views)["kl"].item(), rel=1e-5)


def test_gradients_reach_backbone_and_both_head_outputs():
    method = create_method(load_config("vsimclr-digits"), (1, 8, 8))
    sum(method(_views()).values()).backward()
    assert all(p.grad is not None for p in method.parameters() if p.requires_grad)
