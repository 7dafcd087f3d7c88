"""Controlled-ambiguity protocol: blends with known entropy, centre crops, croppedHasBiggerUnc."""

import math

import pytest
import torch
import torch.nn.functional as F

from probssl.evaluation import uncertainty
from probssl.evaluation.ambiguity import (
    binary_entropy_bits,
    blend_pairs,
    center_crops,
    cropped_has_bigger_uncertainty,
    different_class_partners,
    spearman,
)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def indexed_images(n=20):
    """Image i is the constant 10 i, so a 50 / 50 blend reveals its partner."""
    return (torch.arange(n, dtype=torch.uint8) * 10)[:, None, None, None].expand(n, 3, 4, 5).contiguous()


def test_binary_entropy():
    h = binary_entropy_bits(torch.tensor([0.5, 1.0, 0.0, 0.9], dtype=torch.float64))
    assert h[0] == 1.0 and h[1] == 0.0 and h[2] == 0.0
    assert h[3] == pytest.approx(-(0.9 * math.log2(0.9) + 0.1 * math.log2(0.1)), abs=1e-15)


def test_blend_pairs_shapes_originals_and_partners():
    images, labels = indexed_images(), torch.arange(20) % 4
    blends, ambiguity, lam = blend_pairs(images, labels, generator=gen())
    assert blends.shape == (120, 3, 4, 5) and blends.dtype == torch.float32
    assert lam.tolist() == [v for v in (1.0, 0.9, 0.8, 0.7, 0.6, 0.5) for _ in range(20)]
    assert torch.equal(ambiguity, binary_entropy_bits(lam)) and bool((ambiguity[-20:] == 1).all())
    assert torch.equal(blends[:20], images.float() / 255)  # lambda = 1 gives the originals
    assert float(blends.min()) >= 0 and float(blends.max()) <= 1
    # lambda = 0.5: blend = (a + b) / 2, so b = 2 blend - a; same partner at every lambda
    partner_value = (2 * blends[-20:, 0, 0, 0] * 255 - images[:, 0, 0, 0].float()).round().long()
    partner = partner_value // 10
    assert bool((labels[partner] != labels).all())
    at_09 = (0.9 * images.float() + 0.1 * images[partner].float()) / 255
    assert torch.allclose(blends[20:40], at_09, atol=1e-6)
    again, _, _ = blend_pairs(images, labels, generator=gen())
    assert torch.equal(again, blends)  # reproducible from the generator


def test_partners_uniform_over_other_classes():
    labels = torch.tensor([0, 1, 1, 2, 0])
    g = gen(1)
    draws = torch.stack([different_class_partners(labels, g) for _ in range(3000)])  # [3000, 5]
    assert bool((labels[draws] != labels).all())
    freq = torch.bincount(draws[:, 0], minlength=5).double() / 3000  # image 0 pairs with 1, 2 or 3
    assert freq[[0, 4]].tolist() == [0.0, 0.0]
    assert torch.allclose(freq[1:4], torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.04)
    with pytest.raises(ValueError, match="different class"):
        different_class_partners(torch.zeros(4, dtype=torch.long))


def test_center_crops_known_answers():
    x = torch.rand(3, 2, 32, 32, generator=gen(2))
    crops = center_crops(x, fractions=(1.0, 0.8, 0.5))
    assert crops.shape == (3, 3, 2, 32, 32) and torch.equal(crops[0], x)
    # side round(0.5 * 32) = 16 at offset 8: the crop is x[8:24, 8:24] upsampled
    expected = F.interpolate(x[..., 8:24, 8:24], size=(32, 32), mode="bilinear", align_corners=False)
    assert torch.allclose(crops[2], expected)
    # An image that is 1 inside its central 16 x 16 square and 0 outside: the 0.5 crop is all ones.
    box = torch.zeros(1, 1, 32, 32)
    box[..., 8:24, 8:24] = 1
    assert bool((center_crops(box, (0.5,))[0] == 1).all())
    # side round(0.8 * 32) = 26 at offset round(3.0) = 3: a row-index ramp keeps rows 3..28, symmetric mean
    ramp = torch.arange(32.0)[None, None, :, None].expand(1, 1, 32, 32)
    crop = center_crops(ramp, (0.8,))[0]
    assert float(crop.min()) == 3.0 and float(crop.max()) == 28.0 and float(crop.mean()) == pytest.approx(15.5)
    u8 = center_crops(torch.full((1, 3, 8, 8), 255, dtype=torch.uint8), (1.0, 0.5))
    assert u8.dtype == torch.float32 and bool((u8 == 1).all())


def test_cropped_has_bigger_uncertainty():
    assert cropped_has_bigger_uncertainty(torch.tensor([1.0, 2, 3]), torch.tensor([2.0, 2, 1])) == pytest.approx(1 / 3)
    assert cropped_has_bigger_uncertainty(torch.zeros(4), torch.ones(4)) == 1.0
    assert cropped_has_bigger_uncertainty(torch.ones(4), torch.ones(4)) == 0.0  # ties are not "bigger"


def test_spearman_reused_and_perfect_for_the_ambiguity():
    assert spearman is uncertainty.spearman
    _, ambiguity, _ = blend_pairs(indexed_images(), torch.arange(20) % 4, generator=gen())
    assert spearman(ambiguity, ambiguity) == pytest.approx(1.0)
    assert spearman(-ambiguity, ambiguity) == pytest.approx(-1.0)
