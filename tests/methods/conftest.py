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
