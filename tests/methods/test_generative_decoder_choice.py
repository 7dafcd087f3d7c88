"""Generative methods (SimVAE, VAE) with a user's backbone: the decoder is chosen from the image shape (conv or
MLP), or one ConfigError says which model.decoder to set."""

import sys

import pytest
import torch
from torch import nn

from probssl.config import ConfigError, load_config
from probssl.data import DataSplits, ImageDataset
from probssl.methods import create_method
from probssl.models import ConvDecoder, MLPDecoder, ResNetDecoder, decoder_for_backbone, decoder_for_shape
from probssl.train import Trainer

MODULE = "probssl_test_user_backbones"


def user_cnn(in_channels: int = 3, width: int = 8) -> nn.Module:
    """A user's backbone: no feature_dim attribute, any input size (adaptive pooling)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten()
    )


@pytest.fixture(autouse=True)
def user_module(monkeypatch):
    """``model.backbone: probssl_test_user_backbones:user_cnn`` importable, as a module on PYTHONPATH would be."""
    module = type(sys)(MODULE)
    module.user_cnn = user_cnn
    monkeypatch.setitem(sys.modules, MODULE, module)


def _config(method: str, *extra: str):
    overrides = [f"method.name={method}", f"model.backbone={MODULE}:user_cnn", "model.embed_dim=4"]
    overrides += ["model.head_hidden_dim=16", *extra]
    return load_config(overrides=overrides)


@pytest.mark.parametrize("method_name", ["simvae", "vae"])
@pytest.mark.parametrize(("shape", "decoder"), [((1, 28, 28), ConvDecoder), ((3, 32, 32), ConvDecoder)])
def test_user_backbone_gets_a_conv_decoder_and_a_step_trains(method_name, shape, decoder):
    torch.manual_seed(0)
    method = create_method(_config(method_name), shape).train()
    assert type(method.decoder) is decoder
    views = torch.rand(2, 4, *shape)
    terms = method(views)
    loss = sum(terms.values())
    assert torch.isfinite(loss)
    loss.backward()
    assert method.decoder.out.weight.grad.abs().sum() > 0 and any(
        p.grad is not None and p.grad.abs().sum() > 0 for p in method.backbone.parameters()
    )
    method.eval()
    assert method.reconstruct(torch.rand(3, *shape)).shape == (3, *shape)


def test_tiny_images_get_the_mlp_decoder():
    method = create_method(_config("simvae"), (1, 6, 6))
    assert type(method.decoder) is MLPDecoder
    assert method.decode(torch.randn(2, 4)).shape == (2, 1, 6, 6)


def test_an_odd_shape_is_one_clear_error_naming_model_decoder_and_the_setting_works():
    odd = (3, 4, 2048)  # one side too small for conv stages, too many outputs for an MLP
    with pytest.raises(ConfigError, match=r"model.decoder: auto cannot choose.*\(3, 4, 2048\).*Set model.decoder to"):
        create_method(_config("vae"), odd)
    method = create_method(_config("vae", "model.decoder=conv"), odd)
    assert type(method.decoder) is ConvDecoder and method.decode(torch.randn(2, 4)).shape == (2, *odd)


def test_mirrors_are_unchanged_for_probssl_backbones_and_external_names_go_by_shape():
    assert decoder_for_backbone("convnet", (1, 28, 28)) == "conv"
    assert decoder_for_backbone("mlp-simvae", (1, 28, 28)) == "mlp"
    assert decoder_for_backbone("resnet18-cifar", (3, 32, 32)) == "resnet"
    assert decoder_for_backbone("timm/resnet18", (3, 32, 32)) == "conv"  # not the mirror of probssl's resnet
    assert decoder_for_backbone("torchvision/resnet18", (1, 5, 5)) == "mlp"
    assert decoder_for_backbone(f"{MODULE}:user_cnn", (3, 64, 48)) == "conv"
    assert decoder_for_shape((1, 7, 9)) == "mlp" and decoder_for_shape((1, 8, 9)) == "conv"
    with pytest.raises(ValueError, match="No decoder for 'vit-tiny'"):  # neither registered nor an entry point
        decoder_for_backbone("vit-tiny", (3, 32, 32))


def test_an_explicit_decoder_wins_over_the_shape_rule():
    method = create_method(_config("simvae", "model.decoder=resnet"), (3, 32, 32))
    assert type(method.decoder) is ResNetDecoder


def test_trainer_runs_a_step_with_the_user_backbone(tmp_path):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (12, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.arange(12) % 2
    make = lambda rows: ImageDataset(images[rows], labels[rows], ("a", "b"), "toy")  # noqa: E731
    splits = DataSplits(make(slice(0, 8)), make(slice(8, 10)), make(slice(10, 12)))
    overrides = ["train.max_steps=1", "train.batch_size=4", "train.progress=false", "train.monitor_every=0"]
    trainer = Trainer(_config("simvae", "augment.recipe=simvae", *overrides), tmp_path / "run", splits=splits)
    assert type(trainer.method.decoder) is ConvDecoder
    trainer.fit()
    assert trainer.step == 1
