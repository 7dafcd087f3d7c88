"""The CPU bf16 convolution guard (probssl.train.conv_guard): the risky geometry is found, kept in float32, and
its weight gradient is then finite and equal to float32's, even with freed memory full of NaN."""

import copy

import pytest
import torch
from torch import nn

from probssl.config import load_config
from probssl.train import Trainer
from probssl.train.conv_guard import guard_cpu_bf16_convs, keep_fp32, risky_convs


class TinyImageNetStem(nn.Module):
    """A backbone whose stride-2 3x3 convolution meets a 1x1 map on 8x8 inputs (as layer3 of an ImageNet ResNet)."""

    feature_dim = 16

    def __init__(self, in_channels: int = 1):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, 8, 3, stride=2, padding=1)  # 8x8 -> 4x4: safe
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.down = nn.Conv2d(8, 16, 3, stride=2, padding=1)  # 1x1 input, stride 2: the bug's geometry
        self.same = nn.Conv2d(16, 16, 3, stride=1, padding=1)  # 1x1 input, stride 1: safe

    def forward(self, x):
        return self.same(self.down(self.pool(torch.relu(self.stem(x))))).flatten(1)


def _poison_freed_memory():
    junk = [torch.full((1 << 18,), float("nan")) for _ in range(8)]
    del junk


def test_the_risky_geometry_is_found():
    model = TinyImageNetStem()
    assert risky_convs(model, model, (1, 8, 8)) == ["down"]
    plain = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.Conv2d(4, 4, 3, stride=2, padding=1))
    assert risky_convs(plain, plain, (1, 8, 8)) == []  # 8x8 -> 4x4 -> 2x2: no 1-pixel input
    assert risky_convs(plain, plain, (1, 2, 2)) == ["1"]  # 2x2 -> 1x1, then stride 2 on it
    assert model.training  # the probe restores train mode


@pytest.mark.parametrize("trial", range(3))
def test_a_guarded_conv_has_the_fp32_weight_gradient_under_bf16(trial):
    torch.manual_seed(trial)
    conv = nn.Conv2d(64, 64, 3, stride=2, padding=1, bias=False)
    reference = copy.deepcopy(conv)
    keep_fp32(conv)
    for _ in range(10):
        x = torch.randn(16, 64, 1, 1)
        _poison_freed_memory()
        conv.weight.grad = reference.weight.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = conv(x)
        assert y.dtype == torch.float32
        y.sum().backward()
        reference(x).sum().backward()
        assert torch.isfinite(conv.weight.grad).all()
        torch.testing.assert_close(conv.weight.grad, reference.weight.grad)
    assert copy.deepcopy(conv).forward.__self__ is not conv  # a copy (fine-tuning) keeps its own guard


def test_the_trainer_guards_only_under_cpu_bf16(tmp_path):
    sets = ["train.max_steps=2", "train.batch_size=16", "data.train_subset=64", "train.progress=false"]
    for precision, expected in (("bf16", ["backbone.down"]), ("fp32", [])):
        config = load_config("simclr-digits", overrides=[*sets, f"train.precision={precision}"])
        trainer = Trainer(config, tmp_path / precision, backbone=TinyImageNetStem())
        assert trainer.runtime_record()["fp32_convs"] == expected
        trainer.fit()
        assert all(torch.isfinite(p).all() for p in trainer.method.parameters())
    assert guard_cpu_bf16_convs(TinyImageNetStem(), (1, 8, 8), torch.device("cuda"), "bf16") == []
