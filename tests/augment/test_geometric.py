"""Random resized crop + flips: box sampling, exact resampling cases and an independent bilinear oracle."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from probssl.augment import crop_grid, crop_theta, random_resized_crop, resized_crop, sample_crop_boxes


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def rand_images(n=4, c=3, h=16, w=16, seed=1):
    return torch.rand(n, c, h, w, generator=gen(seed))


# ----------------------------------------------------------------------------- box sampling
def test_boxes_fit_and_follow_scale_and_ratio():
    h, w = 32, 40
    boxes = sample_crop_boxes(4000, h, w, (0.2, 0.9), (0.5, 2.0), gen(0))
    assert boxes.shape == (4000, 4) and boxes.dtype == torch.float64
    top, left, bh, bw = boxes.unbind(1)
    assert torch.equal(boxes, boxes.round()), "integer boxes like torchvision"
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + bh <= h).all() and (left + bw <= w).all()
    assert (bh >= 1).all() and (bw >= 1).all()
    area = bh * bw / (h * w)
    # integer rounding of the sides moves the area a little outside the nominal range
    assert area.min() > 0.2 - 0.05 and area.max() < 0.9 + 0.05
    ratio = bw / bh
    assert ratio.min() > 0.5 * 0.8 and ratio.max() < 2.0 * 1.25
    # offsets cover the whole allowed range (uniform placement)
    slack = h - bh
    assert ((top == 0) & (slack > 0)).any() and ((top == slack) & (slack > 0)).any()


def test_area_fraction_is_uniform_over_scale():
    boxes = sample_crop_boxes(20000, 64, 64, (0.08, 1.0), (1.0, 1.0), gen(3))
    area = boxes[:, 2] * boxes[:, 3] / 64**2
    # U(0.08, 1): mean 0.54, and the fraction below the midpoint is ~1/2
    assert abs(area.mean().item() - 0.54) < 0.01
    assert abs((area < 0.54).double().mean().item() - 0.5) < 0.02


def test_fallback_is_central_crop_with_clamped_ratio():
    # ratio 2 with the whole area can never fit a square image -> central crop w = W, h = round(W / 2)
    boxes = sample_crop_boxes(5, 20, 20, (1.0, 1.0), (2.0, 2.0), gen(0))
    expected = torch.tensor([[5.0, 0.0, 10.0, 20.0]], dtype=torch.float64).expand(5, 4)
    assert torch.equal(boxes, expected)
    # whole-image scale and ratio 1 on a square image always gives the full image
    assert torch.equal(
        sample_crop_boxes(3, 8, 8, (1.0, 1.0), (1.0, 1.0), gen(0))[0],
        torch.tensor([0.0, 0.0, 8.0, 8.0], dtype=torch.float64),
    )


def test_boxes_deterministic_and_fixed_draw_count():
    a = sample_crop_boxes(7, 32, 32, generator=gen(5))
    b = sample_crop_boxes(7, 32, 32, generator=gen(5))
    c = sample_crop_boxes(7, 32, 32, generator=gen(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    g = gen(5)
    sample_crop_boxes(7, 32, 32, generator=g, attempts=10)
    g2 = gen(5)
    torch.rand(7 * 22, generator=g2, dtype=torch.float64)
    assert torch.equal(torch.rand(3, generator=g), torch.rand(3, generator=g2))


def test_invalid_box_arguments():
    with pytest.raises(ValueError):
        sample_crop_boxes(2, 8, 8, (0.5, 0.1))
    with pytest.raises(ValueError):
        sample_crop_boxes(2, 8, 8, (0.1, 0.5), (0.0, 1.0))


# ----------------------------------------------------------------------------- identities and flips
@pytest.mark.parametrize("c", [1, 3])
def test_full_crop_without_flip_is_identity(c):
    x = rand_images(c=c)
    y = random_resized_crop(x, (1.0, 1.0), (1.0, 1.0), generator=gen(0))
    assert y.shape == x.shape
    assert torch.allclose(y, x, atol=1e-5, rtol=0)


def test_hflip_vflip_are_exact_flips():
    x = rand_images(h=12, w=20)
    ratio = (20 / 12, 20 / 12)
    h = random_resized_crop(x, (1.0, 1.0), ratio, hflip_p=1.0, generator=gen(0))
    v = random_resized_crop(x, (1.0, 1.0), ratio, vflip_p=1.0, generator=gen(0))
    hv = random_resized_crop(x, (1.0, 1.0), ratio, hflip_p=1.0, vflip_p=1.0, generator=gen(0))
    assert torch.allclose(h, x.flip(-1), atol=1e-5, rtol=0)
    assert torch.allclose(v, x.flip(-2), atol=1e-5, rtol=0)
    assert torch.allclose(hv, x.flip(-1, -2), atol=1e-5, rtol=0)


def test_flip_probability_half_flips_some():
    x = rand_images(n=64, c=1, h=8, w=8)
    y = random_resized_crop(x, (1.0, 1.0), (1.0, 1.0), hflip_p=0.5, generator=gen(0))
    flipped = torch.tensor([torch.allclose(y[i], x[i].flip(-1), atol=1e-5) for i in range(64)])
    same = torch.tensor([torch.allclose(y[i], x[i], atol=1e-5) for i in range(64)])
    assert torch.all(flipped ^ same)
    assert 16 < flipped.sum() < 48


# ----------------------------------------------------------------------------- exact resampling cases
def test_unscaled_crop_equals_slicing():
    x = rand_images(n=2, h=16, w=16)
    boxes = torch.tensor([[0.0, 0.0, 8.0, 8.0], [5.0, 3.0, 8.0, 8.0]])
    y = resized_crop(x, boxes, (8, 8))
    assert torch.allclose(y[0], x[0, :, :8, :8], atol=1e-5, rtol=0)
    assert torch.allclose(y[1], x[1, :, 5:13, 3:11], atol=1e-5, rtol=0)


def test_downsample_by_two_is_average_pooling():
    # top-left quarter (16x16) of a 32x32 image to 8x8: bilinear samples at the centre of each 2x2 block
    x = rand_images(n=3, h=32, w=32)
    boxes = torch.tensor([[0.0, 0.0, 16.0, 16.0]]).expand(3, 4)
    y = resized_crop(x, boxes, (8, 8))
    assert torch.allclose(y, F.avg_pool2d(x[:, :, :16, :16], 2), atol=1e-5, rtol=0)


def test_full_image_upsampling_matches_interpolate():
    x = rand_images(n=2, h=10, w=14)
    boxes = torch.tensor([[0.0, 0.0, 10.0, 14.0]]).expand(2, 4)
    y = resized_crop(x, boxes, (25, 21))  # border padding == interpolate's edge clamping
    ref = F.interpolate(x, size=(25, 21), mode="bilinear", align_corners=False)
    assert torch.allclose(y, ref, atol=1e-5, rtol=0)
    # zeros padding fades the half-pixel border towards 0 but leaves the interior alone
    z = resized_crop(x, boxes, (25, 21), padding_mode="zeros")
    assert torch.allclose(z[..., 2:-2, 2:-2], ref[..., 2:-2, 2:-2], atol=1e-5, rtol=0)
    assert (z[..., 0, :] < ref[..., 0, :] - 1e-4).any()
    with pytest.raises(ValueError):
        resized_crop(x, boxes, (4, 4), padding_mode="wrap")


def _bilinear_oracle(img, top, left, bh, bw, oh, ow, hflip, vflip):
    """Per-pixel numpy bilinear sampling with edge clamping: an independent coordinate model."""
    c, h, w = img.shape
    out = np.zeros((c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            fi = oh - 1 - i if vflip else i
            fj = ow - 1 - j if hflip else j
            v = top + (fi + 0.5) * bh / oh - 0.5  # continuous pixel index of the sample
            u = left + (fj + 0.5) * bw / ow - 0.5
            v = min(max(v, 0.0), h - 1.0)
            u = min(max(u, 0.0), w - 1.0)
            v0, u0 = int(math.floor(v)), int(math.floor(u))
            v1, u1 = min(v0 + 1, h - 1), min(u0 + 1, w - 1)
            a, b = v - v0, u - u0
            out[:, i, j] = (
                (1 - a) * (1 - b) * img[:, v0, u0]
                + (1 - a) * b * img[:, v0, u1]
                + a * (1 - b) * img[:, v1, u0]
                + a * b * img[:, v1, u1]
            )
    return out


def test_random_resized_crop_matches_bilinear_oracle():
    x = rand_images(n=6, c=3, h=13, w=17, seed=4)
    out_size = (9, 11)
    y = random_resized_crop(x, (0.2, 1.0), (0.6, 1.6), out_size, hflip_p=0.5, vflip_p=0.5, generator=gen(7))
    # replay the draws: boxes, then N uniforms for hflip, then N for vflip
    g = gen(7)
    boxes = sample_crop_boxes(6, 13, 17, (0.2, 1.0), (0.6, 1.6), g)
    hflip = torch.rand(6, generator=g, dtype=torch.float64) < 0.5
    vflip = torch.rand(6, generator=g, dtype=torch.float64) < 0.5
    assert hflip.any() and (~hflip).any()
    for n in range(6):
        top, left, bh, bw = boxes[n].tolist()
        ref = _bilinear_oracle(x[n].double().numpy(), top, left, bh, bw, *out_size, bool(hflip[n]), bool(vflip[n]))
        np.testing.assert_allclose(y[n].numpy(), ref, atol=1e-5)


def test_crop_grid_equals_affine_grid():
    boxes = sample_crop_boxes(9, 20, 24, generator=gen(2))
    flips = torch.rand(9, generator=gen(3)) < 0.5
    theta = crop_theta(boxes, 20, 24, hflip=flips, vflip=~flips)
    grid = crop_grid(theta, (9, 3, 11, 7), dtype=torch.float32)
    ref = F.affine_grid(theta.float(), [9, 3, 11, 7], align_corners=False)
    assert grid.shape == ref.shape and grid.dtype == torch.float32
    assert torch.allclose(grid, ref, atol=1e-6, rtol=0)
    rotated = theta.clone()
    rotated[:, 0, 1] = 0.1
    with pytest.raises(ValueError):
        crop_grid(rotated, (9, 3, 11, 7))


# ----------------------------------------------------------------------------- per-sample behaviour, shapes
def test_identical_images_get_different_crops():
    one = rand_images(n=1, h=32, w=32)
    x = one.expand(8, -1, -1, -1).contiguous()
    y = random_resized_crop(x, generator=gen(0))
    diffs = [(y[0] - y[i]).abs().max().item() for i in range(1, 8)]
    assert min(diffs) > 1e-3


def test_constant_image_stays_constant_for_any_crop():
    x = torch.full((16, 3, 12, 12), 0.37)
    y = random_resized_crop(x, output_size=(20, 5), hflip_p=0.5, vflip_p=0.5, generator=gen(1))
    assert y.shape == (16, 3, 20, 5)
    assert torch.allclose(y, torch.full_like(y, 0.37), atol=1e-6)


def test_output_size_forms_and_dtypes():
    x = rand_images(n=2, c=1, h=10, w=10).double()
    assert random_resized_crop(x, output_size=6, generator=gen(0)).shape == (2, 1, 6, 6)
    y = random_resized_crop(x, output_size=(4, 7), generator=gen(0))
    assert y.shape == (2, 1, 4, 7) and y.dtype == torch.float64
    with pytest.raises(ValueError):
        random_resized_crop(x, output_size=(0, 3), generator=gen(0))
    with pytest.raises(TypeError):
        random_resized_crop((x * 255).to(torch.uint8), generator=gen(0))


def test_deterministic_given_seed():
    x = rand_images(n=5)
    a = random_resized_crop(x, hflip_p=0.5, generator=gen(11))
    b = random_resized_crop(x, hflip_p=0.5, generator=gen(11))
    c = random_resized_crop(x, hflip_p=0.5, generator=gen(12))
    assert torch.equal(a, b) and not torch.equal(a, c)
