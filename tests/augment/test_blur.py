"""Gaussian blur: conservation properties and a direct 2-D convolution oracle."""

import math

import numpy as np
import pytest
import torch

from probssl.augment import default_kernel_size, gaussian_blur, gaussian_kernel1d, random_gaussian_blur


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _oracle_2d(img, sigma, k):
    """Direct 2-D convolution of one [C, H, W] numpy image with the (non-separated) Gaussian kernel."""
    r = k // 2
    ax = np.arange(-r, r + 1)
    g = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * sigma**2))
    g /= g.sum()
    padded = np.pad(img, ((0, 0), (r, r), (r, r)), mode="reflect")
    c, h, w = img.shape
    out = np.zeros_like(img)
    for i in range(h):
        for j in range(w):
            out[:, i, j] = (padded[:, i : i + k, j : j + k] * g).sum(axis=(1, 2))
    return out


def test_default_kernel_size():
    assert [default_kernel_size(s, s) for s in (8, 28, 32, 64, 96, 224)] == [3, 3, 3, 7, 9, 23]
    assert default_kernel_size(224, 32) == 3  # shorter side


def test_kernel_is_normalised_gaussian():
    k = gaussian_kernel1d(torch.tensor([0.5, 1.0, 3.0]), 7)
    assert k.shape == (3, 7)
    assert torch.allclose(k.sum(1), torch.ones(3, dtype=torch.float64))
    ref = torch.tensor([math.exp(-(x**2) / 2) for x in range(-3, 4)], dtype=torch.float64)
    assert torch.allclose(k[1], ref / ref.sum())
    assert torch.equal(
        gaussian_kernel1d(torch.tensor([0.0]), 5)[0], torch.tensor([0, 0, 1.0, 0, 0], dtype=torch.float64)
    )


@pytest.mark.parametrize("sigma,k", [(1.3, 5), (0.7, 3), (2.5, 9)])
def test_matches_direct_2d_convolution(sigma, k):
    x = torch.rand(2, 3, 11, 13, generator=gen(1))
    y = gaussian_blur(x, sigma, kernel_size=k)
    for n in range(2):
        np.testing.assert_allclose(y[n].numpy(), _oracle_2d(x[n].double().numpy(), sigma, k), atol=1e-5)


def test_per_sample_sigma():
    x = torch.rand(4, 3, 16, 16, generator=gen(2))
    sig = torch.tensor([0.3, 1.0, 0.0, 2.0])
    y = gaussian_blur(x, sig, kernel_size=7)
    for n in range(4):
        assert torch.allclose(y[n : n + 1], gaussian_blur(x[n : n + 1], sig[n].item(), kernel_size=7), atol=1e-6)
    assert torch.allclose(y[2], x[2], atol=1e-7)  # sigma 0 -> identity
    assert (y[3] - x[3]).abs().max() > 0.1


def test_preserves_constant_and_mean():
    c = torch.full((3, 1, 20, 20), 0.3)
    assert torch.allclose(gaussian_blur(c, torch.tensor([0.5, 1.0, 2.0])), c, atol=1e-6)
    # reflect padding does not conserve the sum exactly (border pixels are counted twice), but the mean
    # of a random image moves by ~1e-3 and that of a smooth image by ~1e-5
    x = torch.rand(4, 3, 32, 32, generator=gen(3))
    y = gaussian_blur(x, 2.0)
    assert (y.mean(dim=(1, 2, 3)) - x.mean(dim=(1, 2, 3))).abs().max() < 5e-3
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    smooth = (0.5 + 0.4 * torch.sin(6 * xx) * torch.cos(4 * yy)).expand(2, 1, 32, 32).contiguous()
    assert (gaussian_blur(smooth, 2.0, kernel_size=9).mean() - smooth.mean()).abs() < 1e-4
    # blurring reduces the variance of noise
    assert y.var() < x.var()


def test_random_gaussian_blur_probability_and_determinism():
    x = torch.rand(100, 1, 10, 10, generator=gen(4))
    assert torch.equal(random_gaussian_blur(x, (0.5, 2.0), p=0.0, generator=gen(0)), x)
    y = random_gaussian_blur(x, (0.5, 2.0), p=0.5, generator=gen(0))
    blurred = (y - x).flatten(1).abs().amax(1) > 0
    assert 30 < blurred.sum() < 70
    assert torch.equal(y, random_gaussian_blur(x, (0.5, 2.0), p=0.5, generator=gen(0)))
    # replay: N uniforms (apply) then N uniforms (sigma)
    g = gen(0)
    mask = torch.rand(100, generator=g, dtype=torch.float64) < 0.5
    sig = 0.5 + 1.5 * torch.rand(100, generator=g, dtype=torch.float64)
    assert torch.equal(blurred, mask)
    assert torch.allclose(y[mask], gaussian_blur(x[mask], sig[mask]), atol=1e-6)


def test_bad_arguments():
    x = torch.rand(2, 3, 4, 4)
    with pytest.raises(ValueError):
        gaussian_blur(x, 1.0, kernel_size=9)  # reflect padding of 4 on a 4x4 image
    with pytest.raises(ValueError):
        gaussian_blur(x, 1.0, kernel_size=4)  # even
    with pytest.raises(ValueError):
        gaussian_blur(x, torch.ones(3))  # wrong number of sigmas
