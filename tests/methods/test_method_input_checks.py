"""posterior(), represent() and uncertainty() check their images, for EVERY registered method: uint8 converted as
training converts it, float range and dtype, shape against the model's image shape, device -- one clear error."""

import numpy as np
import pytest
import torch

from probssl.config import load_config
from probssl.data import to_float_images
from probssl.methods import create_method, list_methods

SHAPE = (1, 8, 8)
N = 6


def _method(name: str):
    overrides = [f"method.name={name}", "model.width=0.25", "model.embed_dim=8", "model.head_hidden_dim=32"]
    if name == "scl":
        overrides.append("method.latent_dim=16")
    torch.manual_seed(0)
    return create_method(load_config(overrides=overrides), SHAPE).eval()


@pytest.fixture(params=list_methods())
def method(request):
    return _method(request.param)


def _uint8(n: int = N, shape=SHAPE) -> torch.Tensor:
    return torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def test_uint8_is_converted_as_training_converts_it(method):
    x = _uint8()
    assert method.image_shape == SHAPE
    torch.testing.assert_close(method.represent(x, "backbone"), method.represent(to_float_images(x), "backbone"))
    torch.testing.assert_close(method.posterior(x).mean_direction, method.posterior(x.float() / 255).mean_direction)
    default = method.uncertainty_kinds()[0]
    torch.testing.assert_close(method.uncertainty(x, default), method.uncertainty(x.double() / 255, default))


@pytest.mark.parametrize("entry", ["posterior", "represent", "uncertainty"])
def test_a_wrong_shape_names_expected_and_got(method, entry):
    call = getattr(method, entry)
    with pytest.raises(ValueError, match=rf"{entry} expects images \[N, 1, 8, 8\].*got shape \[6, 3, 8, 8\]"):
        call(torch.rand(N, 3, 8, 8))
    with pytest.raises(ValueError, match=r"got shape \[6, 1, 16, 16\].*data.image_size"):
        call(torch.rand(N, 1, 16, 16))
    with pytest.raises(ValueError, match=r"got shape \[1, 8, 8\] \(one image: images.unsqueeze\(0\)\)"):
        call(torch.rand(*SHAPE))


def test_channels_last_gets_a_permute_hint():
    method = create_method(load_config(overrides=["model.width=0.25"]), (3, 8, 8)).eval()
    with pytest.raises(ValueError, match=r"channels last: images.permute\(0, 3, 1, 2\)"):
        method.represent(torch.rand(2, 8, 8, 3))


def test_bad_types_and_ranges_are_one_clear_error(method):
    with pytest.raises(TypeError, match=r"expects a torch.Tensor \[N, 1, 8, 8\].*got ndarray"):
        method.posterior(np.zeros((N, *SHAPE), dtype=np.float32))
    with pytest.raises(TypeError, match=r"uint8 \(0..255\) or float \(0..1\).*got torch.int64"):
        method.represent(torch.zeros(N, *SHAPE, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"float pixels in \[0, 1\].*\[0, 255\].*divide by 255"):
        method.represent(_uint8().float())  # 0..255 as floats
    with pytest.raises(ValueError, match=r"range \[-2.*normalised"):
        method.posterior(torch.full((N, *SHAPE), -2.1))
    nan = torch.rand(N, *SHAPE)
    nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        method.uncertainty(nan)


def test_float_within_tolerance_and_other_float_dtypes_pass(method):
    x = torch.rand(N, *SHAPE)
    x[0, 0, 0, 0] = 1.0005  # rounding of a resize, not a wrong scale
    out = method.represent(x.double(), "backbone")
    assert out.dtype == torch.float32 and out.shape[0] == N


def test_a_nested_call_is_checked_once(method, monkeypatch):
    calls = []
    original = method.check_images

    def counting(images, where="posterior"):
        calls.append(where)
        return original(images, where)

    monkeypatch.setattr(method, "check_images", counting)
    method.represent(_uint8(), "mean")  # represent -> posterior
    assert calls == ["represent"]
    method.posterior(_uint8())
    assert calls == ["represent", "posterior"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device (CUDA)")
def test_input_is_moved_to_the_model_device():
    method = _method("vsimclr").cuda()
    assert method.represent(_uint8()).device.type == "cuda"
