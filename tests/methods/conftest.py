import pytest
import torch
from torch import nn


class DeterministicGaussianHead(nn.Module):
    """loc = a projection head's output, scale = tiny: PN samples collapse onto loc's direction."""

    def __init__(self, proj, scale=1e-7):
        super().__init__()
        self.proj, self.scale = proj, scale

    def forward(self, x):
        loc = self.proj(x)
        return loc, torch.full_like(loc, self.scale)


@pytest.fixture
def deterministic_gaussian_head():
    """The class above (importlib test mode cannot import one test module from another)."""
    return DeterministicGaussianHead


def _terms_and_replayed_draw(method, views, seed=0):
    """The method's loss terms under ``seed``, and (loc, scale, z) of the same reparameterised draw redone
    outside the method: the oracle side of the ELBO tests."""
    torch.manual_seed(seed)
    terms = method(views)
    torch.manual_seed(seed)
    with torch.no_grad():
        loc, scale = method.encode(views)
        z = loc + scale * torch.randn_like(loc)
    return terms, loc, scale, z


@pytest.fixture
def terms_and_replayed_draw():
    return _terms_and_replayed_draw
