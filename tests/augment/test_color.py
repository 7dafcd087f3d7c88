"""Photometric ops against per-pixel / per-sample oracles (colorsys, numpy)."""

import colorsys

import numpy as np
import pytest
import torch

from probssl.augment import (
    GRAY_WEIGHTS,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    binarize,
    color_jitter,
    hsv_to_rgb,
    random_color_jitter,
    random_grayscale,
    random_solarize,
    rgb_to_grayscale,
    rgb_to_hsv,
    solarize,
)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def rand_images(n=4, c=3, h=6, w=5, seed=1):
    return torch.rand(n, c, h, w, generator=gen(seed))


def special_pixels():
    """[1, 3, 1, P] image with grey, black, white, primaries, ties and random pixels."""
    px = [
        (0.0, 0.0, 0.0),
        (1.0, 1.0, 1.0),
        (0.5, 0.5, 0.5),
        (1.0, 0.0, 0.0),
        (0.0, 1.0, 0.0),
        (0.0, 0.0, 1.0),
        (1.0, 1.0, 0.0),
        (1.0, 0.0, 1.0),
        (0.0, 1.0, 1.0),
        (0.8, 0.8, 0.2),
        (0.3, 0.9, 0.9),
        (0.7, 0.2, 0.7),
        (0.2, 0.4, 0.6),
        (0.9, 0.1, 0.3),
    ]
    px += [tuple(p) for p in torch.rand(30, 3, generator=gen(9)).tolist()]
    return torch.tensor(px, dtype=torch.float32).T.reshape(1, 3, 1, -1)


# ----------------------------------------------------------------------------- grayscale
def test_grayscale_uses_itu_r_601_weights():
    assert GRAY_WEIGHTS == (0.299, 0.587, 0.114)
    x = torch.eye(3).view(3, 3, 1, 1)  # pure red, green, blue images
    g = rgb_to_grayscale(x)
    assert g.shape == (3, 1, 1, 1)
    assert torch.allclose(g.flatten(), torch.tensor([0.299, 0.587, 0.114]), atol=1e-7)
    x = rand_images()
    ref = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    assert torch.allclose(rgb_to_grayscale(x)[:, 0], ref, atol=1e-6)
    g3 = rgb_to_grayscale(x, num_output_channels=3)
    assert g3.shape == x.shape and torch.equal(g3[:, 0], g3[:, 2])
    grey = rand_images(c=1)
    assert torch.equal(rgb_to_grayscale(grey), grey)


# ----------------------------------------------------------------------------- identities
@pytest.mark.parametrize("c", [1, 3])
def test_neutral_factors_are_identities(c):
    x = rand_images(c=c)
    ones = torch.ones(x.shape[0])
    assert torch.equal(adjust_brightness(x, ones), x)
    assert torch.equal(adjust_contrast(x, ones), x)
    assert torch.equal(adjust_saturation(x, ones), x)
    assert torch.allclose(adjust_hue(x, torch.zeros(x.shape[0])), x, atol=1e-6, rtol=0)


def test_saturation_zero_is_grayscale_and_grey_images_ignore_colour_ops():
    x = rand_images()
    assert torch.allclose(adjust_saturation(x, 0.0), rgb_to_grayscale(x, 3), atol=1e-6)
    grey = rand_images(c=1)
    assert torch.equal(adjust_saturation(grey, 0.3), grey)
    assert torch.equal(adjust_hue(grey, 0.3), grey)


@pytest.mark.parametrize("shift", [1.0, -1.0, 2.0])
def test_full_hue_turn_is_identity(shift):
    x = rand_images(n=3, h=8, w=8)
    assert torch.allclose(adjust_hue(x, shift), x, atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------- oracles
def test_brightness_and_contrast_per_sample_oracles():
    x = rand_images(n=3)
    f = torch.tensor([0.5, 1.3, 2.0])
    assert torch.allclose(adjust_brightness(x, f), (x * f.view(3, 1, 1, 1)).clamp(0, 1), atol=1e-7)
    xn = x.double().numpy()
    out = adjust_contrast(x, f).numpy()
    for n in range(3):
        gray_mean = (0.299 * xn[n, 0] + 0.587 * xn[n, 1] + 0.114 * xn[n, 2]).mean()
        ref = np.clip(f[n].item() * xn[n] + (1 - f[n].item()) * gray_mean, 0, 1)
        np.testing.assert_allclose(out[n], ref, atol=1e-6)
    # contrast 0 -> flat image at the grey mean; grey images use their own mean
    g = rand_images(c=1)
    flat = adjust_contrast(g, 0.0)
    assert torch.allclose(flat, g.mean(dim=(1, 2, 3), keepdim=True).expand_as(g), atol=1e-6)


def test_saturation_oracle():
    x = rand_images(n=2)
    f = torch.tensor([0.3, 1.7])
    xn = x.double().numpy()
    out = adjust_saturation(x, f).numpy()
    for n in range(2):
        gray = 0.299 * xn[n, 0] + 0.587 * xn[n, 1] + 0.114 * xn[n, 2]
        np.testing.assert_allclose(out[n], np.clip(f[n].item() * xn[n] + (1 - f[n].item()) * gray, 0, 1), atol=1e-6)


def test_rgb_hsv_round_trip_matches_colorsys():
    x = special_pixels()
    hsv = rgb_to_hsv(x)
    for p in range(x.shape[-1]):
        ref = colorsys.rgb_to_hsv(*x[0, :, 0, p].double().tolist())
        got = hsv[0, :, 0, p].tolist()
        assert got == pytest.approx(ref, abs=1e-6), (x[0, :, 0, p], got, ref)
    assert torch.allclose(hsv_to_rgb(hsv), x, atol=1e-6, rtol=0)
    for p in range(x.shape[-1]):
        ref = colorsys.hsv_to_rgb(*hsv[0, :, 0, p].double().tolist())
        assert hsv_to_rgb(hsv)[0, :, 0, p].tolist() == pytest.approx(ref, abs=1e-6)


@pytest.mark.parametrize("shift", [0.1, -0.1, 0.25, 0.5, -0.37, 0.9])
def test_hue_shift_matches_colorsys(shift):
    x = special_pixels()
    y = adjust_hue(x, shift)
    for p in range(x.shape[-1]):
        h, s, v = colorsys.rgb_to_hsv(*x[0, :, 0, p].double().tolist())
        ref = colorsys.hsv_to_rgb((h + shift) % 1.0, s, v)
        assert y[0, :, 0, p].tolist() == pytest.approx(ref, abs=1e-5), (x[0, :, 0, p], shift)


def test_hue_shift_is_per_sample():
    x = special_pixels().expand(3, -1, -1, -1).contiguous()
    shifts = torch.tensor([0.05, -0.2, 0.4])
    y = adjust_hue(x, shifts)
    for n in range(3):
        assert torch.allclose(y[n : n + 1], adjust_hue(x[n : n + 1], shifts[n].item()), atol=1e-6)
    assert not torch.allclose(y[0], y[1], atol=1e-3)


# ----------------------------------------------------------------------------- colour jitter
def _sequential(x, b, c, s, h, order):
    ops = [
        lambda t, i: adjust_brightness(t, b[i].item()),
        lambda t, i: adjust_contrast(t, c[i].item()),
        lambda t, i: adjust_saturation(t, s[i].item()),
        lambda t, i: adjust_hue(t, h[i].item()),
    ]
    out = []
    for i in range(x.shape[0]):
        t = x[i : i + 1]
        for op in order[i].tolist():
            t = ops[op](t, i)
        out.append(t)
    return torch.cat(out)


def test_color_jitter_applies_each_samples_own_order():
    x = rand_images(n=6, h=5, w=5, seed=3)
    g = gen(4)
    b = 0.6 + 0.8 * torch.rand(6, generator=g)
    c = 0.6 + 0.8 * torch.rand(6, generator=g)
    s = 0.6 + 0.8 * torch.rand(6, generator=g)
    h = 0.2 * torch.rand(6, generator=g) - 0.1
    order = torch.stack([torch.randperm(4, generator=g) for _ in range(6)])
    y = color_jitter(x, b, c, s, h, order)
    assert torch.allclose(y, _sequential(x, b, c, s, h, order), atol=1e-5, rtol=0)
    # order matters: a fixed order gives a different result for at least one sample
    fixed = color_jitter(x, b, c, s, h)
    assert torch.allclose(fixed, _sequential(x, b, c, s, h, torch.arange(4).expand(6, 4)), atol=1e-5)
    assert not torch.allclose(fixed, y, atol=1e-4)


def test_color_jitter_neutral_parameters_are_bit_exact_and_input_untouched():
    x = rand_images(n=3)
    x0 = x.clone()
    y = color_jitter(x, torch.ones(3), torch.ones(3), torch.ones(3), torch.zeros(3))
    assert torch.equal(y, x)
    y = color_jitter(x, torch.tensor([1.0, 1.5, 1.0]), None, None, None)
    assert torch.equal(y[0], x[0]) and torch.equal(y[2], x[2]) and not torch.equal(y[1], x[1])
    assert torch.equal(x, x0)


def test_random_color_jitter_probability_and_determinism():
    x = rand_images(n=200, h=4, w=4)
    untouched = random_color_jitter(x, p=0.0, generator=gen(0))
    assert torch.equal(untouched, x)
    y = random_color_jitter(x, p=0.5, generator=gen(0))
    changed = (y - x).flatten(1).abs().amax(1) > 0
    assert 70 < changed.sum() < 130
    assert torch.equal(y, random_color_jitter(x, p=0.5, generator=gen(0)))
    assert not torch.equal(y, random_color_jitter(x, p=0.5, generator=gen(1)))
    assert y.min() >= 0 and y.max() <= 1


def test_random_grayscale():
    x = rand_images(n=100, h=3, w=3)
    assert torch.equal(random_grayscale(x, 0.0, gen(0)), x)
    y = random_grayscale(x, 1.0, gen(0))
    assert torch.allclose(y, rgb_to_grayscale(x, 3), atol=1e-7)
    y = random_grayscale(x, 0.3, gen(0))
    grey = (y[:, 0] == y[:, 1]).flatten(1).all(1) & (y[:, 1] == y[:, 2]).flatten(1).all(1)
    assert 15 < grey.sum() < 45
    assert torch.equal(y[~grey], x[~grey])
    g1 = rand_images(c=1)
    assert torch.equal(random_grayscale(g1, 1.0, gen(0)), g1)


# ----------------------------------------------------------------------------- solarize / binarize
def test_solarize_exact_values():
    x = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]).view(1, 1, 1, 5)
    assert solarize(x, 0.5).flatten().tolist() == [0.0, 0.25, 0.5, 0.25, 0.0]
    assert solarize(x, 0.8).flatten().tolist() == [0.0, 0.25, 0.5, 0.75, 0.0]
    two = x.expand(2, 3, 1, 5).contiguous()
    y = solarize(two, 0.5, mask=torch.tensor([False, True]))
    assert torch.equal(y[0], two[0]) and y[1, 2].flatten().tolist() == [0.0, 0.25, 0.5, 0.25, 0.0]
    assert torch.equal(random_solarize(two, 0.0, 0.5, gen(0)), two)
    assert torch.equal(random_solarize(two, 1.0, 0.5, gen(0)), solarize(two, 0.5))


def test_binarize_exact_values():
    x = torch.tensor([0.0, 0.2, 0.5, 0.5001, 0.9, 1.0]).view(1, 1, 2, 3)
    y = binarize(x)
    assert y.dtype == x.dtype
    assert y.flatten().tolist() == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    assert binarize(x, 0.1).flatten().tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0]


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        adjust_brightness(torch.rand(2, 3, 4), 1.0)  # not 4-D
    with pytest.raises(ValueError):
        adjust_hue(torch.rand(2, 2, 4, 4), 0.1)  # C = 2
    with pytest.raises(ValueError):
        adjust_contrast(torch.rand(2, 3, 4, 4), torch.ones(3))  # wrong number of factors
    with pytest.raises(TypeError):
        adjust_brightness(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), 1.0)
    with pytest.raises(ValueError, match="permutation"):
        color_jitter(torch.rand(2, 3, 4, 4), torch.ones(2), order=torch.tensor([[0, 1, 2, 3], [0, 0, 2, 3]]))


def test_inplace_flag():
    x = rand_images(n=8)
    x0 = x.clone()
    y = random_color_jitter(x, p=1.0, generator=gen(0))
    assert torch.equal(x, x0)
    z = random_color_jitter(x, p=1.0, generator=gen(0), inplace=True)
    assert z.data_ptr() == x.data_ptr() and torch.equal(z, y)
    x = x0.clone()
    g = random_grayscale(x, 0.5, gen(1), inplace=True)
    assert g.data_ptr() == x.data_ptr() and torch.equal(g, random_grayscale(x0, 0.5, gen(1)))
