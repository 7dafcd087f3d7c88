"""Corruptions: identity at severity 0, monotone strength, exact occluded area, severity-uncertainty trend."""

import pytest
import torch

from probssl.evaluation.corruptions import (
    CORRUPTIONS,
    SEVERITIES,
    blur,
    corrupt,
    gaussian_noise,
    occlusion,
    occlusion_side,
    uncertainty_vs_severity,
)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _images(n=16, c=3, h=28, w=28):
    return torch.rand(n, c, h, w, generator=gen(9))


def test_severity_zero_is_identity():
    x = _images()
    for name in CORRUPTIONS:
        out = corrupt(x, name, 0, gen())
        assert torch.equal(out, x) and out is not x


def test_table_has_six_increasing_levels():
    for name in CORRUPTIONS:
        levels = SEVERITIES[name]
        assert len(levels) == 6 and levels[0] == 0
        assert all(a < b for a, b in zip(levels, levels[1:]))


def test_noise_std_grows_with_severity_and_matches_table():
    x = torch.full((8, 1, 64, 64), 0.5)  # mid-grey: clipping is rare for std <= 0.18
    stds = [float((gaussian_noise(x, s, gen(s)) - x).std()) for s in range(6)]
    assert stds[0] == 0 and all(a < b for a, b in zip(stds, stds[1:]))
    for s in (1, 2, 3):
        assert stds[s] == pytest.approx(SEVERITIES["gaussian_noise"][s], rel=0.03)
    out = gaussian_noise(x, 5, gen())
    assert float(out.min()) >= 0 and float(out.max()) <= 1


def test_blur_removes_more_detail_with_severity_and_keeps_the_mean():
    x = _images(c=1, h=32, w=32)
    residual = [float((blur(x, s) - x).pow(2).mean()) for s in range(6)]
    assert residual[0] == 0 and all(a < b for a, b in zip(residual, residual[1:]))
    assert torch.allclose(blur(x, 3).mean((1, 2, 3)), x.mean((1, 2, 3)), atol=0.02)


def test_occlusion_zeroes_exactly_the_stated_area():
    x = torch.ones(50, 3, 28, 30)
    for s in range(1, 6):
        side = occlusion_side(28, 30, s)
        assert side == round(SEVERITIES["occlusion"][s] * 28)
        out = occlusion(x, s, gen(s))
        zeroed = (out == 0).all(1)  # [N, H, W]: every channel of a patch pixel is zero
        assert torch.equal((out == 0).sum((1, 2, 3)), torch.full((50,), 3 * side * side))
        # the zeros form a side x side square
        rows, cols = zeroed.any(2).sum(1), zeroed.any(1).sum(1)
        assert bool((rows == side).all()) and bool((cols == side).all())
    # positions vary between images
    out = occlusion(x, 3, gen())
    assert len({tuple(torch.nonzero(m[0])[0].tolist()) for m in (out == 0)}) > 5


def test_corruptions_are_seeded():
    x = _images()
    for name in CORRUPTIONS:
        assert torch.equal(corrupt(x, name, 3, gen(1)), corrupt(x, name, 3, gen(1)))
    with pytest.raises(ValueError):
        corrupt(x, "fog", 1, gen())
    with pytest.raises(ValueError):
        corrupt(x, "blur", 6, gen())


def test_uncertainty_vs_severity_positive_for_residual_variance():
    x = _images(n=32, c=1)

    def residual_variance(images):  # an "uncertainty" that grows with any damage to the clean images
        return (images - x).flatten(1).var(1)

    result = uncertainty_vs_severity(residual_variance, x, gen())
    assert set(result) == set(CORRUPTIONS)
    for name, r in result.items():
        assert r["severity"] == [0, 1, 2, 3, 4, 5] and len(r["mean_uncertainty"]) == 6
        assert r["mean_uncertainty"][0] == 0
        assert all(a < b for a, b in zip(r["mean_uncertainty"], r["mean_uncertainty"][1:])), name
        assert r["spearman"] > 0.8, name
    noise_gen = gen(3)
    unrelated = uncertainty_vs_severity(lambda images: torch.rand(len(images), generator=noise_gen), x, gen())
    assert all(abs(r["spearman"]) < 0.2 for r in unrelated.values())


def test_numpy_and_torch_integer_severities_are_accepted():
    import numpy as np

    x = _images(n=2)
    assert torch.equal(corrupt(x, "blur", np.int64(2)), corrupt(x, "blur", torch.tensor(2)))
    with pytest.raises(ValueError):
        corrupt(x, "blur", 1.5)
