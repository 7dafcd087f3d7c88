"""method.posterior_family of VSimCLR / VSupCon: every family trains, its KL term is the closed form, and
evaluation sees the right family (posterior_class, uncertainty kinds)."""

import pytest
import torch

from probssl.config import ConfigError, load_config
from probssl.distributions import (
    PowerSpherical,
    ProjectedNormal,
    VonMisesFisher,
    kl_power_spherical_uniform,
    kl_von_mises_fisher_uniform,
)
from probssl.methods import create_method
from probssl.models import SphericalHead

SHAPE = (1, 8, 8)
FAMILIES = {"projected-normal": ProjectedNormal, "power-spherical": PowerSpherical, "vmf": VonMisesFisher}
CLOSED_FORM = {"power-spherical": kl_power_spherical_uniform, "vmf": kl_von_mises_fisher_uniform}
LABELS = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 4, 5])


def _method(name, family, *extra):
    overrides = [f"method.name={name}", f"method.posterior_family={family}", "model.width=0.25"]
    overrides += ["model.embed_dim=8", "model.head_hidden_dim=32", *extra]
    torch.manual_seed(0)
    return create_method(load_config(overrides=overrides), SHAPE)


@pytest.mark.parametrize("name", ["vsimclr", "vsupcon"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_family_trains_a_few_steps_with_finite_loss(name, family):
    method = _method(name, family)
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-3)
    views = torch.rand(2, 12, *SHAPE)  # digits-shaped
    for _ in range(3):
        terms = method(views, LABELS)
        loss = sum(terms.values())
        assert torch.isfinite(loss) and set(terms) == {"nt_xent" if name == "vsimclr" else "supcon", "kl"}
        optimizer.zero_grad()
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in method.parameters() if p.grad is not None)
        optimizer.step()


@pytest.mark.parametrize("family", ["power-spherical", "vmf"])
@pytest.mark.parametrize("normalize", [True, False])
def test_kl_term_is_beta_times_the_closed_form(family, normalize):
    method = _method("vsimclr", family, "method.beta=0.5", f"method.kl_normalize={str(normalize).lower()}")
    views = torch.rand(2, 10, *SHAPE)
    terms = method(views)
    with torch.no_grad():  # train mode: the same batch gives the same BatchNorm statistics
        direction, kappa = method.forward_head(method.encode_views(views))
    d = direction.shape[-1]
    expected = CLOSED_FORM[family](kappa, d) / (d if normalize else 1)
    torch.testing.assert_close(terms["kl"].detach(), 0.5 * expected.mean())
    assert kappa.shape == (2, 10) and (kappa > 0).all()


@pytest.mark.parametrize("name", ["vsimclr", "vsupcon"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_evaluation_sees_the_family(name, family):
    method = _method(name, family).eval()
    cls = FAMILIES[family]
    assert method.posterior_class is cls and type(method).posterior_class is ProjectedNormal  # set per instance
    x = torch.rand(5, *SHAPE)
    q = method.posterior(x)
    assert isinstance(q, cls) and q.batch_shape == (5,) and q.event_shape == (8,)
    assert set(method.uncertainty_kinds()) == set(cls.uncertainty_kinds())  # the method's default first
    for kind in method.uncertainty_kinds():
        u = method.uncertainty(x, kind)
        assert u.shape == (5,) and torch.isfinite(u).all()
    if family != "projected-normal":
        assert method.uncertainty_kinds()[0] == "expected_cosine_distance"
        torch.testing.assert_close(method.represent(x, "mean").norm(dim=-1), torch.ones(5))
    assert method.represent(x, "sample").shape == (5, 8)


def test_kl_estimator_only_applies_to_the_projected_normal():
    load_config(overrides=["method.name=vsimclr", "method.kl_estimator=mc"])  # fine for the projected normal
    load_config(overrides=["method.name=vsimclr", "method.posterior_family=vmf"])  # defaults: fine
    with pytest.raises(ConfigError, match="kl_estimator only applies to posterior_family=projected-normal"):
        load_config(overrides=["method.name=vsimclr", "method.posterior_family=vmf", "method.kl_estimator=mc"])
    with pytest.raises(ConfigError, match="kl_samples"):
        load_config(overrides=["method.name=vsupcon", "method.posterior_family=power-spherical", "method.kl_samples=4"])
    with pytest.raises(ConfigError, match="posterior_family must be one of"):
        load_config(overrides=["method.name=vsimclr", "method.posterior_family=gaussian"])


def test_the_preset_switches_family_by_override():
    config = load_config("vsimclr-digits", overrides=["method.posterior_family=vmf"])
    method = create_method(config, SHAPE)
    assert isinstance(method.head, SphericalHead) and method.posterior_class is VonMisesFisher


def test_spherical_head_starts_at_init_kappa_and_keeps_the_floor():
    torch.manual_seed(0)
    head = SphericalHead(16, 32, 8, num_layers=2)
    direction, kappa = head(torch.randn(64, 16))
    assert direction.shape == (64, 8) and kappa.shape == (64,)
    torch.testing.assert_close(direction.norm(dim=-1), torch.ones(64))
    assert ((kappa - 8).abs() < 0.2 * 8).all()  # ~d at init, within ~10%
    with torch.no_grad():
        head.out.bias[-1].fill_(-1e4)
    assert (head(torch.randn(4, 16)).kappa >= head.min_kappa).all()
    custom = SphericalHead(16, 32, 8, init_kappa=20.0)
    with torch.no_grad():
        custom.out.weight[-1].zero_()
    torch.testing.assert_close(custom(torch.randn(3, 16)).kappa, torch.full((3,), 20.0))
    with pytest.raises(ValueError, match="init_kappa"):
        SphericalHead(16, 32, 8, min_kappa=1.0, init_kappa=0.5)
