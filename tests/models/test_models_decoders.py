"""Decoders: exact output shapes, gradient flow, create_decoder's backbone -> decoder mapping."""

import pytest
import torch

from probssl.models import (
    ConvDecoder,
    GaussianHead,
    MLPDecoder,
    ResNetDecoder,
    create_backbone,
    create_decoder,
    decoder_for_backbone,
    list_decoders,
)

SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", ["mlp", "conv", "resnet"])
def test_exact_output_shape_and_grads(name, shape):
    dec = create_decoder(name, 16, shape)
    z = torch.randn(3, 16)
    x = dec(z)
    assert x.shape == (3, *shape)
    (x * torch.randn_like(x)).sum().backward()
    for pname, p in dec.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    with torch.no_grad():
        assert dec.eval()(torch.randn(1, 16)).shape == (1, *shape)


@pytest.mark.parametrize("cls", [MLPDecoder, ConvDecoder, ResNetDecoder])
@pytest.mark.parametrize("shape", [(3, 28, 28), (1, 8, 32), (2, 5, 5)])
def test_other_shapes(cls, shape):
    with torch.no_grad():
        assert cls(4, shape).eval()(torch.randn(2, 4)).shape == (2, *shape)


def test_mlp_decoder_mirrors_simvae_encoder():
    dec = MLPDecoder(10, (1, 28, 28))
    widths = [m.out_features for m in dec.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [500, 500, 2000, 784]


def test_conv_decoder_retraces_encoder_sizes():
    dec = ConvDecoder(8, (1, 28, 28))
    assert dec.start_shape == (128, 4, 4)
    sizes = []
    hook = [m.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[-2:]))) for m in dec.stages]
    dec.eval()(torch.randn(1, 8))
    for h in hook:
        h.remove()
    assert sizes == [(7, 7), (14, 14), (28, 28)]
    assert ConvDecoder(8, (1, 8, 8)).start_shape == (128, 4, 4)


def test_resnet_decoder_upsampling_path():
    dec = ResNetDecoder(8, (3, 32, 32))
    assert dec.start_shape == (512, 4, 4)
    assert [b.size for b in dec.blocks] == [(8, 8), (16, 16), (32, 32)]
    assert [b.conv2.out_channels for b in dec.blocks] == [256, 128, 64]


def test_create_decoder_mapping():
    assert set(list_decoders()) == {"mlp", "conv", "resnet", "simvae-resnet18"}
    cases = {
        "mlp-simvae": MLPDecoder,
        "convnet": ConvDecoder,
        "resnet18": ResNetDecoder,
        "resnet18-cifar": ResNetDecoder,
        "resnet50-imagenet": ResNetDecoder,
        "mlp": MLPDecoder,
        "conv": ConvDecoder,
        "resnet": ResNetDecoder,
    }
    for name, cls in cases.items():
        assert type(create_decoder(name, 8, (1, 28, 28))) is cls, name
    assert isinstance(create_decoder("auto", 8, (3, 32, 32)), ResNetDecoder)
    assert isinstance(create_decoder("auto", 8, (1, 28, 28)), ConvDecoder)
    assert isinstance(create_decoder("auto", 8, (1, 8, 8)), ConvDecoder)
    assert decoder_for_backbone("resnet50-cifar") == "resnet"


def test_create_decoder_errors():
    with pytest.raises(ValueError) as info:
        create_decoder("vit-b16", 8, (3, 32, 32))
    msg = str(info.value)
    for name in ["mlp", "conv", "resnet", "auto", "convnet", "mlp-simvae"]:
        assert name in msg
    with pytest.raises(ValueError, match="out_shape"):
        create_decoder("conv", 8, (28, 28))
    with pytest.raises(ValueError):
        create_decoder("conv", 0, (1, 28, 28))


def test_encoder_head_decoder_roundtrip():
    enc = create_backbone("convnet", 1, 28)
    head = GaussianHead(enc.feature_dim, 128, 16)
    dec = create_decoder("convnet", 16, (1, 28, 28))
    x = torch.rand(4, 1, 28, 28)
    loc, scale = head(enc(x))
    recon = dec(loc + scale * torch.randn_like(scale))
    assert recon.shape == x.shape
    torch.nn.functional.binary_cross_entropy_with_logits(recon, x).backward()
    assert all(p.grad is not None for m in (enc, head, dec) for p in m.parameters())
