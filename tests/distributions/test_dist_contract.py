"""The posterior contract (probssl.distributions.base), checked for EVERY Posterior family: a new family fails
test_every_family_has_an_example until it is added to EXAMPLES, and then gets every check below."""

import math

import pytest
import torch
from torch.distributions import Distribution

import probssl.distributions as D
from probssl.distributions import Posterior

B, DIM = 4, 6


def _loc():
    return torch.nn.functional.normalize(torch.randn(B, DIM, dtype=torch.float64), dim=-1)


EXAMPLES = {
    "ProjectedNormal": lambda: D.ProjectedNormal(
        torch.randn(B, DIM, dtype=torch.float64), torch.rand(B, DIM, dtype=torch.float64) + 0.2
    ),
    "DiagonalNormal": lambda: D.DiagonalNormal(
        torch.randn(B, DIM, dtype=torch.float64), torch.rand(B, DIM, dtype=torch.float64) + 0.2
    ),
    "StraightThroughBernoulli": lambda: D.StraightThroughBernoulli(torch.randn(B, DIM, dtype=torch.float64)),
    "PointMass": lambda: D.PointMass(torch.randn(B, DIM, dtype=torch.float64)),
    "HypersphericalUniform": lambda: D.HypersphericalUniform(DIM, batch_shape=(B,), dtype=torch.float64),
    "PowerSpherical": lambda: D.PowerSpherical(_loc(), torch.rand(B, dtype=torch.float64) * 20 + 0.5),
    "VonMisesFisher": lambda: D.VonMisesFisher(_loc(), torch.rand(B, dtype=torch.float64) * 20 + 0.5),
}
SPHERE = {"ProjectedNormal", "HypersphericalUniform", "PowerSpherical", "VonMisesFisher"}
NO_DENSITY = {"PointMass"}


def _families():
    seen, todo = set(), [Posterior]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in seen and sub.__module__.startswith("probssl."):
                seen.add(sub)
                todo.append(sub)
    # a shared base that does not sample (DirectionalPosterior) is not a family of its own
    return sorted(cls.__name__ for cls in seen if cls.rsample is not Distribution.rsample)


def test_every_family_has_an_example():
    assert set(_families()) <= set(EXAMPLES), "add the new family to EXAMPLES"


@pytest.fixture(params=sorted(EXAMPLES))
def q(request):
    torch.manual_seed(0)
    return request.param, EXAMPLES[request.param]()


def test_shapes_of_samples_log_prob_and_expand(q):
    name, q = q
    assert q.batch_shape == (B,) and q.event_shape == (DIM,)
    z = q.sample((3,))
    assert z.shape == (3, B, DIM)
    if q.has_rsample:
        assert q.rsample((2,)).shape == (2, B, DIM)
    if name in SPHERE:
        torch.testing.assert_close(z.norm(dim=-1), torch.ones(3, B, dtype=z.dtype))
    if name not in NO_DENSITY:
        assert q.log_prob(z).shape == (3, B) and torch.isfinite(q.log_prob(z)).all()
    wide = q.expand((2, B))
    assert wide.batch_shape == (2, B) and wide.sample().shape == (2, B, DIM)


def test_entropy_sign_conventions(q):
    name, q = q
    if name in NO_DENSITY:
        with pytest.raises(NotImplementedError):
            q.entropy()
        return
    h = q.entropy()
    assert h.shape == (B,) and torch.isfinite(h).all()
    if name in SPHERE:  # the uniform distribution has the largest entropy on the sphere: log |S^{d-1}|
        assert (h <= D.log_sphere_area(DIM) + 0.05).all()
    if name == "StraightThroughBernoulli":
        assert (h >= 0).all() and (h <= DIM * math.log(2) + 1e-12).all()


def test_named_scores_and_deterministic_summary(q):
    name, q = q
    kinds = type(q).uncertainty_kinds()
    assert kinds and kinds[0] == type(q).default_uncertainty
    assert set(type(q).uncertainty_descriptions()) == set(kinds)
    for kind in kinds:
        u = q.uncertainty(kind)
        assert u.shape == (B,), kind
        assert name == "HypersphericalUniform" or torch.isfinite(u).all(), kind
    torch.testing.assert_close(q.uncertainty(), q.uncertainty(kinds[0]))
    with pytest.raises(ValueError, match=kinds[0]):
        q.uncertainty("no-such-score")
    if name == "HypersphericalUniform":
        return  # no unique mode or direction
    state = torch.random.get_rng_state()
    m1, m2 = q.mean_direction, q.mean_direction
    assert torch.equal(torch.random.get_rng_state(), state), "mean_direction must not draw random numbers"
    assert torch.equal(m1, m2) and m1.shape == (B, DIM)
