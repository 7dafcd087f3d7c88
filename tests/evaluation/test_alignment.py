"""Alignment and uniformity (Wang & Isola 2020) against known answers."""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad
from scipy.special import i0

from probssl.evaluation.alignment import alignment, uniformity


def _sphere(n, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)


def test_alignment_of_identical_views_is_zero_and_antipodal_views_is_four():
    z = torch.randn(100, 8)
    assert alignment(z, z) == 0.0
    assert alignment(z, 3 * z) == pytest.approx(0.0, abs=1e-12)  # inputs are normalised first
    assert alignment(z, -z) == pytest.approx(4.0)
    assert alignment(z, -z, alpha=1) == pytest.approx(2.0)


def test_alignment_of_orthogonal_views_is_two():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert alignment(a, b) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        alignment(a, b[:1])


@pytest.mark.parametrize(
    "d,expected",
    [
        (2, -4 + math.log(i0(4.0))),  # theta uniform on the circle: E exp(4 cos theta) = I_0(4)
        (3, -4 + math.log(math.sinh(4.0) / 4)),  # cos theta uniform on [-1, 1] (Archimedes)
    ],
)
def test_uniformity_of_uniform_points_matches_closed_form(d, expected):
    assert uniformity(_sphere(4000, d), max_samples=None) == pytest.approx(expected, abs=0.03)


def test_uniformity_in_high_dimension_matches_the_angle_integral_and_tends_to_minus_four():
    d = 64  # density of u = cos theta is proportional to (1 - u^2)^((d - 3) / 2)
    weight = lambda u: (1 - u * u) ** ((d - 3) / 2)  # noqa: E731
    expected = -4 + math.log(quad(lambda u: np.exp(4 * u) * weight(u), -1, 1)[0] / quad(weight, -1, 1)[0])
    value = uniformity(_sphere(3000, d), max_samples=None)
    assert value == pytest.approx(expected, abs=0.02)
    assert -4 < value < -3.7


def test_uniformity_of_a_collapsed_embedding_is_zero_and_subsampling_is_seeded():
    assert uniformity(torch.ones(50, 4)) == pytest.approx(0.0, abs=1e-12)
    z = _sphere(3000, 8)
    assert uniformity(z, max_samples=500, seed=1) == uniformity(z, max_samples=500, seed=1)
    assert uniformity(z, max_samples=500) == pytest.approx(uniformity(z, max_samples=None), abs=0.05)
