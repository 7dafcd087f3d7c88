"""timm/NAME and torchvision/NAME backbones against the REAL packages (skipped where they are not installed).

The tested torch here (2.13.0 CPU) has no torchvision that imports, so these run in a separate virtualenv with
torch 2.14.1 + torchvision 0.29.1 + timm: `make test-integrations` (the README says how long it takes).
"""

import pytest
import torch

timm = pytest.importorskip("timm")
torchvision = pytest.importorskip("torchvision")

from probssl.config import load_config  # noqa: E402
from probssl.methods import create_method  # noqa: E402
from probssl.train import Trainer  # noqa: E402


@pytest.mark.parametrize("name", ["timm/resnet18", "torchvision/resnet18"])
def test_a_package_model_trains_a_step_and_represents(name, tmp_path):
    overrides = [
        f"model.backbone={name}",
        "model.width=null",
        "train.max_steps=2",
        "train.batch_size=16",
        "data.train_subset=64",
        "train.progress=false",
        "model.channels_last=false",
        # fp32: this checks the package integration. Under bf16 autocast (auto on an AMX CPU) the ImageNet ResNet-18 on
        # 8x8 digits (layer4 on 1x1 maps, batch-norm over 16 values) turned NaN by step 2 in about half of the pytest
        # runs on 2026-12-02, never in 16 standalone runs: noted in issue #11, not yet explained.
        "train.precision=fp32",
    ]
    config = load_config("simclr-digits", overrides=overrides)
    method = create_method(config, (1, 8, 8))
    assert method.backbone.feature_dim == 512  # the ResNet-18 pooled features, classifier removed
    Trainer(config, tmp_path / "run").fit()
    assert method.represent(torch.rand(2, 1, 8, 8)).shape == (2, 512)
