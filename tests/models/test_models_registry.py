"""The backbone registry: listing, errors with suggestions, registration."""

import pytest
from torch import nn

from probssl.models import BACKBONES, create_backbone, list_backbones, register_backbone


def test_list_backbones_sorted_and_complete():
    names = list_backbones()
    assert names == sorted(names)
    assert set(names) >= {
        "convnet",
        "mlp-simvae",
        "resnet18",
        "resnet50",
        "resnet18-cifar",
        "resnet18-imagenet",
        "resnet50-cifar",
        "resnet50-imagenet",
    }
    assert list(BACKBONES) == names and len(BACKBONES) == len(names)
    assert "convnet" in BACKBONES and "nope" not in BACKBONES
    assert BACKBONES.get("nope") is None and callable(BACKBONES["convnet"])


def test_unknown_name_lists_available_and_suggests():
    with pytest.raises(ValueError) as info:
        create_backbone("resnet-18", 3, 32)
    msg = str(info.value)
    assert "resnet-18" in msg and "Available" in msg
    for name in list_backbones():
        assert name in msg
    assert "Did you mean 'resnet18'" in msg
    with pytest.raises(ValueError, match="Did you mean 'convnet'"):
        create_backbone("convent", 1, 28)
    with pytest.raises(ValueError, match="Available"):
        BACKBONES["zzzzzz"]


def test_bad_sizes():
    with pytest.raises(ValueError, match="in_channels"):
        create_backbone("convnet", 0, 28)
    with pytest.raises(ValueError, match="image_size"):
        create_backbone("convnet", 1, -3)
    with pytest.raises(ValueError, match="image_size"):
        create_backbone("convnet", 1, 28.0)


def test_register_custom_backbone():
    class Tiny(nn.Module):
        def __init__(self, in_channels, image_size, feature_dim=7):
            super().__init__()
            self.feature_dim = feature_dim
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size * image_size, feature_dim))

        def forward(self, x):
            return self.net(x)

    try:
        assert register_backbone("tiny-test")(Tiny) is Tiny
        assert "tiny-test" in list_backbones()
        assert create_backbone("tiny-test", 1, 4, feature_dim=3).feature_dim == 3
        with pytest.raises(ValueError, match="already registered"):
            register_backbone("tiny-test")(Tiny)
        register_backbone("tiny-test", overwrite=True)(Tiny)
    finally:
        BACKBONES.unregister("tiny-test")
    assert "tiny-test" not in list_backbones()


def test_factory_must_return_module_with_feature_dim():
    try:
        register_backbone("broken-test")(lambda c, s: nn.Linear(2, 2))
        with pytest.raises(TypeError, match="feature_dim"):
            create_backbone("broken-test", 1, 4)
    finally:
        BACKBONES.unregister("broken-test")
