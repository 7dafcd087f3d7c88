"""AugmentParams validation, recipes and the multi-view Augmenter."""

import dataclasses

import pytest
import torch

from probssl.augment import (
    RECIPES,
    Augmenter,
    AugmentParams,
    random_resized_crop,
    recipe,
    rgb_to_grayscale,
    solarize,
)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def rand_images(n=4, c=3, h=16, w=16, seed=1):
    return torch.rand(n, c, h, w, generator=gen(seed))


# ----------------------------------------------------------------------------- AugmentParams
def test_defaults_and_frozen():
    p = AugmentParams()
    assert p.crop_scale == (0.08, 1.0) and p.crop_ratio == (3 / 4, 4 / 3)
    assert (p.hflip_p, p.vflip_p, p.jitter_p, p.grayscale_p, p.blur_p, p.solarize_p) == (0.5, 0.0, 0.8, 0.2, 0.0, 0.0)
    assert (p.brightness, p.contrast, p.saturation, p.hue) == (0.4, 0.4, 0.4, 0.1)
    assert p.blur_sigma == (0.1, 2.0) and p.solarize_threshold == 0.5 and p.binarize is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.hflip_p = 0.1


def test_sequences_are_stored_as_tuples():
    p = AugmentParams(crop_scale=[0.2, 1], blur_sigma=[1, 2])
    assert p.crop_scale == (0.2, 1.0) and p.blur_sigma == (1.0, 2.0)
    assert hash(p) == hash(AugmentParams(crop_scale=(0.2, 1.0), blur_sigma=(1.0, 2.0)))


@pytest.mark.parametrize(
    "field,value",
    [
        ("hflip_p", 1.5),
        ("vflip_p", -0.1),
        ("jitter_p", 2),
        ("grayscale_p", float("nan")),
        ("blur_p", -1),
        ("solarize_p", "0.5"),
        ("crop_scale", (0.5, 0.2)),
        ("crop_scale", (0.0, 1.0)),
        ("crop_scale", (0.5, 1.5)),
        ("crop_scale", (0.5,)),
        ("crop_ratio", (-1.0, 1.0)),
        ("crop_ratio", (2.0, 1.0)),
        ("crop_ratio", "ab"),
        ("blur_sigma", (0.0, 1.0)),
        ("blur_sigma", (2.0, 1.0)),
        ("brightness", -0.1),
        ("contrast", float("inf")),
        ("saturation", None),
        ("hue", 0.6),
        ("hue", -0.1),
        ("solarize_threshold", 1.5),
        ("binarize", 1),
    ],
)
def test_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        AugmentParams(**{field: value})


# ----------------------------------------------------------------------------- recipes
def test_recipe_names():
    assert RECIPES == ("simclr", "simvae", "none")
    for name in RECIPES:
        for c in (1, 3):
            assert isinstance(recipe(name, c), AugmentParams)


def test_simclr_recipe():
    p = recipe("simclr", 3)
    assert p.crop_scale == (0.08, 1.0) and p.crop_ratio == pytest.approx((3 / 4, 4 / 3))
    assert (p.hflip_p, p.vflip_p, p.jitter_p, p.grayscale_p, p.blur_p, p.solarize_p) == (0.5, 0, 0.8, 0.2, 0, 0)
    assert (p.brightness, p.contrast, p.saturation, p.hue) == (0.4, 0.4, 0.4, 0.1)
    assert not p.binarize
    g = recipe("simclr", 1)
    assert (g.saturation, g.hue, g.grayscale_p) == (0, 0, 0)
    assert (g.brightness, g.contrast, g.jitter_p, g.hflip_p, g.crop_scale) == (0.4, 0.4, 0.8, 0.5, (0.08, 1.0))
    assert recipe("simclr", 3, blur_p=0.5).blur_p == 0.5


def test_simvae_recipe():
    g = recipe("simvae", 1)
    assert g.crop_scale == (0.4, 1.0) and g.crop_ratio == (0.75, 1.3)
    assert (g.vflip_p, g.hflip_p) == (0.5, 0.0)
    assert g.binarize and g.jitter_p == 0 and g.grayscale_p == 0
    c = recipe("simvae", 3)
    assert c.crop_scale == (0.4, 1.0) and c.crop_ratio == (0.75, 1.3) and (c.vflip_p, c.hflip_p) == (0.5, 0.0)
    assert c.jitter_p == 1.0 and not c.binarize
    assert min(c.brightness, c.contrast, c.saturation, c.hue) > 0


def test_none_recipe_fields():
    p = recipe("none", 3)
    assert p.crop_scale == (1.0, 1.0) and p.crop_ratio == (1.0, 1.0)
    assert all(getattr(p, f) == 0 for f in ("hflip_p", "vflip_p", "jitter_p", "grayscale_p", "blur_p", "solarize_p"))
    assert not p.binarize


def test_recipe_errors_list_valid_options():
    with pytest.raises(ValueError, match="simclr, simvae, none"):
        recipe("byol", 3)
    with pytest.raises(ValueError, match="hflip_p") as err:
        recipe("simclr", 3, hflip=0.5)
    assert "hflip" in str(err.value) and "crop_scale" in str(err.value)
    with pytest.raises(ValueError, match="channels"):
        recipe("simclr", 2)
    with pytest.raises(ValueError, match="jitter_p"):
        recipe("simclr", 3, jitter_p=3.0)


# ----------------------------------------------------------------------------- Augmenter
@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("views", [1, 2, 3, 4])
def test_shapes_dtype_range(c, views):
    x = rand_images(n=5, c=c, h=12, w=12)
    for name in RECIPES:
        y = Augmenter(recipe(name, c, blur_p=0.5, solarize_p=0.3))(x, views=views, generator=gen(0))
        assert y.shape == (views, 5, c, 12, 12) and y.dtype == torch.float32
        assert y.min() >= 0 and y.max() <= 1


@pytest.mark.parametrize("c", [1, 3])
def test_custom_output_size(c):
    x = rand_images(n=3, c=c, h=20, w=16)
    y = Augmenter(recipe("simclr", c), output_size=(9, 13))(x, views=2, generator=gen(0))
    assert y.shape == (2, 3, c, 9, 13)
    assert Augmenter(recipe("simclr", c), output_size=8)(x, generator=gen(0)).shape == (2, 3, c, 8, 8)
    # "none" with another output size is a plain resize
    z = Augmenter(recipe("none", c), output_size=(8, 8))(x[:, :, :16], views=1, generator=gen(0))
    assert torch.allclose(z[0], torch.nn.functional.avg_pool2d(x[:, :, :16], 2), atol=1e-5)


def test_uint8_input_is_scaled():
    x8 = (rand_images(n=3) * 255).round().to(torch.uint8)
    aug = Augmenter(recipe("simclr", 3))
    y8 = aug(x8, generator=gen(0))
    yf = aug(x8.float() / 255, generator=gen(0))
    assert y8.dtype == torch.float32 and torch.allclose(y8, yf, atol=1e-6)
    assert torch.allclose(Augmenter(recipe("none", 3))(x8, views=1)[0], x8.float() / 255, atol=1e-6)


def test_float64_input_keeps_dtype():
    x = rand_images(n=2).double()
    assert Augmenter(recipe("simclr", 3))(x, generator=gen(0)).dtype == torch.float64


def test_determinism_and_seed_dependence():
    x = rand_images(n=6)
    aug = Augmenter(recipe("simclr", 3, blur_p=0.5))
    a = aug(x, views=2, generator=gen(3))
    assert torch.equal(a, aug(x, views=2, generator=gen(3)))
    assert not torch.allclose(a, aug(x, views=2, generator=gen(4)))
    # generator=None uses torch's global CPU generator
    torch.manual_seed(7)
    b = aug(x)
    torch.manual_seed(7)
    assert torch.equal(b, aug(x))


@pytest.mark.parametrize("c", [1, 3])
def test_none_recipe_is_identity(c):
    x = rand_images(n=4, c=c)
    y = Augmenter(recipe("none", c))(x, views=3, generator=gen(0))
    for v in range(3):
        assert torch.allclose(y[v], x, atol=1e-5, rtol=0)
    assert y.data_ptr() != x.data_ptr()


def test_views_are_independent_and_samples_differ():
    one = rand_images(n=1, h=24, w=24)
    x = one.expand(4, -1, -1, -1).contiguous()
    y = Augmenter(recipe("simclr", 3))(x, views=2, generator=gen(0))
    flat = y.reshape(8, -1)
    dist = torch.cdist(flat, flat)
    assert dist[~torch.eye(8, dtype=torch.bool)].min() > 1e-2


def test_views_stack_the_batch_views_times():
    # the crop stage is one random_resized_crop on the [views * N] stack, drawn from the same generator
    x = rand_images(n=3, h=10, w=10)
    params = recipe("none", 3, crop_scale=(0.3, 1.0), crop_ratio=(0.5, 2.0), hflip_p=0.5, vflip_p=0.5)
    y = Augmenter(params, output_size=(7, 8))(x, views=2, generator=gen(5))
    ref = random_resized_crop(x.repeat(2, 1, 1, 1), (0.3, 1.0), (0.5, 2.0), (7, 8), 0.5, 0.5, gen(5))
    assert torch.equal(y.reshape(6, 3, 7, 8), ref)


def test_single_stage_pipelines():
    x = rand_images(n=4)
    grey = Augmenter(recipe("none", 3, grayscale_p=1.0))(x, views=1, generator=gen(0))[0]
    assert torch.allclose(grey, rgb_to_grayscale(x, 3), atol=1e-6)
    sol = Augmenter(recipe("none", 3, solarize_p=1.0, solarize_threshold=0.3))(x, views=1, generator=gen(0))[0]
    assert torch.allclose(sol, solarize(x, 0.3), atol=1e-6)
    binar = Augmenter(recipe("none", 3, binarize=True))(x, views=1)[0]
    assert torch.equal(binar, (x > 0.5).float())
    jit = Augmenter(recipe("none", 3, jitter_p=1.0, brightness=0.5))(x, views=2, generator=gen(0))
    ratio = jit / x.clamp(min=1e-3)
    # brightness only: every image is scaled by one factor in [0.5, 1.5] (where not clamped)
    ok = (jit < 1) & (x > 0.05)
    for v in range(2):
        for n in range(4):
            r = ratio[v, n][ok[v, n]]
            assert r.max() - r.min() < 1e-4 and 0.5 <= r.mean() <= 1.5


def test_simvae_grey_is_binary_and_vflip_only():
    x = rand_images(n=8, c=1, h=28, w=28)
    y = Augmenter(recipe("simvae", 1))(x, views=2, generator=gen(0))
    assert set(y.unique().tolist()) <= {0.0, 1.0}


def test_colour_ops_skip_grey_images():
    x = rand_images(n=4, c=1)
    y = Augmenter(recipe("none", 1, saturation=0.4, hue=0.1, grayscale_p=1.0, jitter_p=1.0))(x, views=1)
    assert torch.allclose(y[0], x, atol=1e-6)


def test_invalid_inputs():
    aug = Augmenter(recipe("simclr", 3))
    with pytest.raises(ValueError):
        aug(torch.rand(3, 16, 16))
    with pytest.raises(ValueError):
        aug(torch.rand(2, 2, 16, 16))
    with pytest.raises(TypeError):
        aug(torch.zeros(2, 3, 8, 8, dtype=torch.int32))
    with pytest.raises(ValueError):
        aug(torch.rand(2, 3, 8, 8), views=0)
    with pytest.raises(TypeError):
        Augmenter({"hflip_p": 0.5})
    with pytest.raises(ValueError):
        Augmenter(recipe("simclr", 3), output_size=(0, 4))
    with pytest.raises(ValueError):
        Augmenter(recipe("simclr", 3), padding_mode="wrap")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_and_cuda_agree():
    x = rand_images(n=8)
    aug = Augmenter(recipe("simclr", 3, blur_p=0.5))
    cpu = aug(x, generator=gen(0))
    gpu = aug(x.cuda(), generator=gen(0))
    assert torch.allclose(cpu, gpu.cpu(), atol=1e-4)


def test_augment_config_and_params_stay_in_sync():
    """Every AugmentParams field can be set from a config, and the config has nothing else."""
    import dataclasses

    from probssl.augment import AugmentParams
    from probssl.augment.pipeline import _PIPELINE_KEYS
    from probssl.config import AugmentConfig

    config_keys = {f.name for f in dataclasses.fields(AugmentConfig)} - set(_PIPELINE_KEYS)
    assert config_keys == {f.name for f in dataclasses.fields(AugmentParams)}


def test_augmenter_from_config_applies_overrides():
    from probssl.augment import augmenter_from_config
    from probssl.config import load_config

    config = load_config(overrides=["augment.blur_sigma=[0.5, 0.7]", "augment.solarize_threshold=0.3"])
    aug = augmenter_from_config(config.augment, (3, 16, 16))
    assert aug.params.blur_sigma == (0.5, 0.7) and aug.params.solarize_threshold == 0.3
