"""timm/NAME and torchvision/NAME backbones, with stand-in packages (the real ones: tests/integrations/)."""

import sys
import types

import pytest
import torch
from torch import nn

from probssl.config import ConfigError, load_config
from probssl.methods import create_method


class _Net(nn.Module):
    def __init__(self, in_chans=3, width=4):
        super().__init__()
        self.conv = nn.Conv2d(in_chans, width, 3)
        self.fc = nn.Linear(width, 10)

    def forward(self, x):
        return self.fc(self.conv(x).mean((2, 3)))


@pytest.fixture
def fake_timm(monkeypatch):
    calls = {}

    def create_model(name, pretrained=False, num_classes=1000, **kwargs):
        calls.update(name=name, pretrained=pretrained, num_classes=num_classes, **kwargs)
        net = _Net(kwargs.get("in_chans", 3), kwargs.get("width", 4))
        net.fc = nn.Identity()  # timm's num_classes=0
        return net

    monkeypatch.setitem(sys.modules, "timm", types.SimpleNamespace(create_model=create_model))
    return calls


def test_timm_models_are_built_without_a_classifier_and_never_pretrained(fake_timm):
    config = load_config(
        "simclr-digits",
        overrides=["model.backbone=timm/resnet18", "model.width=null", "model.backbone_args={width: 6}"],
    )
    method = create_method(config, (1, 8, 8))
    assert fake_timm == {"name": "resnet18", "pretrained": False, "num_classes": 0, "width": 6, "in_chans": 1}
    assert method.backbone.feature_dim == 6 and method.represent(torch.rand(2, 1, 8, 8)).shape == (2, 6)


def test_torchvision_models_lose_their_classifier(monkeypatch):
    models = types.SimpleNamespace(get_model=lambda name, weights=None, **kw: _Net(3, 5))
    monkeypatch.setitem(sys.modules, "torchvision", types.SimpleNamespace(models=models))
    config = load_config("simclr-digits", overrides=["model.backbone=torchvision/resnet18", "model.width=null"])
    method = create_method(config, (3, 8, 8))
    assert isinstance(method.backbone.fc, nn.Identity) and method.backbone.feature_dim == 5
    grey = create_method(config, (1, 8, 8))  # grey images are repeated to the three channels torchvision expects
    assert grey.represent(torch.rand(2, 1, 8, 8)).shape == (2, 5)


def test_local_weights_only_and_clear_errors(fake_timm, tmp_path, monkeypatch):
    net = _Net(1, 4)
    net.fc = nn.Identity()
    torch.save(net.state_dict(), tmp_path / "w.pt")
    config = load_config(
        "simclr-digits",
        overrides=[
            "model.backbone=timm/x",
            "model.width=null",
            f"model.backbone_args={{pretrained_file: {tmp_path / 'w.pt'}}}",
        ],
    )
    method = create_method(config, (1, 8, 8))
    torch.testing.assert_close(method.backbone.conv.weight, net.conv.weight)
    with pytest.raises(ConfigError, match="no such file"):
        create_method(
            load_config(
                "simclr-digits",
                overrides=[
                    "model.backbone=timm/x",
                    "model.width=null",
                    "model.backbone_args={pretrained_file: /nope.pt}",
                ],
            ),
            (1, 8, 8),
        )
    with pytest.raises(ConfigError, match="convnet shorthands"):
        create_method(load_config("simclr-digits", overrides=["model.backbone=timm/x"]), (1, 8, 8))
    # None in sys.modules makes every import of timm fail, importlib.import_module's included, even where the real
    # timm is installed (make test-torch-next): patching builtins.__import__ alone misses import_module.
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(ConfigError, match="needs timm"):
        create_method(load_config("simclr-digits", overrides=["model.backbone=timm/x", "model.width=null"]), (1, 8, 8))
