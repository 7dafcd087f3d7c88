"""Style probes: transformation correctness, balanced labels, and a probe on the true parameter."""

import pytest
import torch
import torch.nn.functional as F

from probssl.evaluation.style import (
    STYLE_TASKS,
    apply_style,
    content_style_probes,
    make_style_dataset,
    style_labels,
    style_probe,
)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _digits(n=64, seed=0):
    """uint8 grey images [N, 1, 28, 28] with random strokes inside the central 16 x 16 region."""
    x = torch.zeros(n, 1, 28, 28, dtype=torch.uint8)
    x[:, :, 6:22, 6:22] = (torch.rand(n, 1, 16, 16, generator=gen(seed)) < 0.3).to(torch.uint8) * 255
    return x


def test_labels_in_range_and_balanced():
    images = _digits(6000)
    for task, spec in STYLE_TASKS.items():
        _, labels = make_style_dataset(images, task, gen(1))
        assert labels.dtype == torch.int64 and int(labels.min()) >= 0 and int(labels.max()) < spec.num_bins
        counts = torch.bincount(labels, minlength=spec.num_bins).double()
        assert bool((counts > 0.85 * 6000 / spec.num_bins).all()), task


def test_binning_edges():
    assert style_labels("rotation", torch.tensor([-45.0, -27.1, -26.9, 0.0, 44.9, 45.0])).tolist() == [0, 0, 1, 2, 4, 4]
    assert style_labels("thickness", torch.tensor([-1.0, 0.0, 1.0])).tolist() == [0, 1, 2]


def test_neutral_parameters_are_the_identity():
    x = torch.rand(8, 3, 20, 24, generator=gen(2))  # non-square: the rotation must respect the aspect ratio
    neutral = {"rotation": 0.0, "scale": 1.0, "translation_x": 0.0, "brightness": 1.0}
    for task, value in neutral.items():
        assert torch.allclose(apply_style(x, task, torch.full((8,), value)), x, atol=1e-5), task
    grey = _digits(4)
    assert torch.equal(apply_style(grey, "thickness", torch.zeros(4)), grey.float() / 255)


def test_geometric_transformations_match_exact_pixel_operations():
    x = torch.rand(4, 2, 16, 16, generator=gen(3))
    # 90 degrees clockwise (on screen) maps pixel centres onto pixel centres: a pure permutation.
    assert torch.allclose(apply_style(x, "rotation", torch.full((4,), 90.0)), torch.rot90(x, -1, (2, 3)), atol=1e-5)
    # a shift by 3 of the 16 pixels to the right, black fill
    shifted = torch.zeros_like(x)
    shifted[..., 3:] = x[..., :-3]
    assert torch.allclose(apply_style(x, "translation_x", torch.full((4,), 3 / 16)), shifted, atol=1e-5)
    # zoom 0.5 about the centre: output pixel centres fall on the corners of 2 x 2 input blocks, so the
    # central 8 x 8 is their average, and the border is black
    small = apply_style(x, "scale", torch.full((4,), 0.5))
    assert torch.allclose(small[..., 4:12, 4:12], F.avg_pool2d(x, 2), atol=1e-5)
    assert float(small[..., :3, :].abs().max()) == 0


def test_thickness_dilates_and_erodes_by_one_pixel():
    x = torch.zeros(2, 1, 9, 9)
    x[0, 0, 4, 4] = 1.0  # a dot
    x[1, 0, 3:6, 3:6] = 1.0  # a 3 x 3 square
    thick = apply_style(x, "thickness", torch.tensor([1.0, -1.0]))
    assert thick[0].sum() == 9 and thick[0, 0, 3:6, 3:6].sum() == 9  # dot -> 3 x 3 square
    assert thick[1].sum() == 1 and thick[1, 0, 4, 4] == 1  # square -> dot
    with pytest.raises(ValueError):
        apply_style(torch.rand(2, 3, 9, 9), "thickness", torch.zeros(2))


def _centroid_x(images):
    w = images.sum((1, 2))  # [N, W] column mass
    return ((w * torch.arange(images.shape[-1])).sum(1) / w.sum(1))[:, None]


def test_probe_on_the_true_parameter_is_near_perfect():
    blob = torch.zeros(1500, 1, 28, 28)
    blob[:, :, 12:16, 12:16] = 1.0
    res = style_probe(_centroid_x, blob[:1000], blob[1000:], "translation_x", seed=0)
    assert res["acc"] > 0.95 and res["chance"] == pytest.approx(1 / 5) and res["num_bins"] == 5
    flat = torch.full((1500, 3, 8, 8), 0.8)
    res = style_probe(lambda im: im.mean((1, 2, 3))[:, None], flat[:1000], flat[1000:], "brightness", seed=1)
    assert res["acc"] > 0.95 and res["chance"] == pytest.approx(0.2)
    res = style_probe(lambda im: im.sum((1, 2, 3))[:, None], _digits(900)[:600], _digits(900)[600:], "thickness")
    assert res["acc"] > 0.95 and res["chance"] == pytest.approx(1 / 3) and res["num_bins"] == 3


def test_style_invisible_to_an_invariant_representation_is_at_chance():
    flat = torch.full((1500, 1, 8, 8), 0.8)
    res = style_probe(lambda im: torch.randn(len(im), 4), flat[:1000], flat[1000:], "brightness", seed=2)
    assert res["acc"] < 0.3


def test_content_style_probes_reports_content_and_every_grey_task():
    images, labels = _digits(600), torch.arange(600) % 2
    images[labels == 1, :, 2:4, 2:4] = 255  # class 1 carries a corner mark
    out = content_style_probes(
        lambda im: F.avg_pool2d(im, 4).flatten(1), images[:400], labels[:400], images[400:], labels[400:]
    )
    assert set(out) == {"content", *STYLE_TASKS}
    assert out["content"]["acc"] > 0.95 and out["content"]["chance"] == pytest.approx(0.5)
