"""ResNet-18 / ResNet-50 backbones (He et al. 2016), written from scratch (no torchvision).

The architecture is torchvision's (``BasicBlock`` / ``Bottleneck`` v1.5 with the stride on the
3x3 conv, same init) without the final ``fc`` layer, so parameter counts match torchvision
minus the classifier: 11,176,512 (resnet18) and 23,508,032 (resnet50) for the ImageNet stem
with 3 input channels.

Two stems:

* ``"imagenet"``: ``conv7x7(stride 2)-BN-ReLU-maxpool3x3(stride 2)`` (224x224 images).
* ``"cifar"``: ``conv3x3(stride 1)-BN-ReLU``, no max-pool (32x32 images; SimCLR's CIFAR variant).
  Only ``conv1`` differs, by ``64 * in_channels * (49 - 9)`` parameters.
* ``"auto"`` (default of the bare ``resnet18`` / ``resnet50`` names): ``"cifar"`` when the
  larger image side is <= 64, else ``"imagenet"``.

Registered names: ``resnet18``, ``resnet50`` (``stem`` kwarg, default ``"auto"``) and
``resnet18-cifar``, ``resnet18-imagenet``, ``resnet50-cifar``, ``resnet50-imagenet`` (stem fixed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from ._utils import init_conv_bn, to_pair
from .registry import register_backbone

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "resnet18", "resnet50", "STEMS"]

STEMS = ("cifar", "imagenet")


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride, 1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 1, stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def resolve_stem(stem: str, image_size: int | tuple[int, int] | None) -> str:
    if stem == "auto":
        if image_size is None:
            return "imagenet"
        return "cifar" if max(to_pair(image_size)) <= 64 else "imagenet"
    if stem not in STEMS:
        raise ValueError(f"stem must be one of {STEMS + ('auto',)}, got {stem!r}")
    return stem


class ResNet(nn.Module):
    """ResNet body: stem -> layer1..4 -> global average pool -> ``[N, 512 * expansion]``.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: blocks per stage, e.g. ``(2, 2, 2, 2)`` for ResNet-18.
        in_channels: image channels.
        stem: ``"cifar"``, ``"imagenet"`` or ``"auto"`` (decided from ``image_size``).
        image_size: only used by ``stem="auto"``.
        zero_init_residual: zero the gamma of the last BN of every residual branch so each block
            starts as the identity (Goyal et al. 2017).  Default ``False`` (torchvision default).
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: Sequence[int],
        in_channels: int = 3,
        stem: str = "imagenet",
        image_size: int | tuple[int, int] | None = None,
        zero_init_residual: bool = False,
    ):
        super().__init__()
        self.stem_type = resolve_stem(stem, image_size)
        self.inplanes = 64
        if self.stem_type == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.in_channels = in_channels
        self.feature_dim: int = 512 * block.expansion
        self.zero_init_residual = zero_init_residual
        self.reset_parameters()

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        mods = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        mods += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*mods)

    def reset_parameters(self) -> None:
        init_conv_bn(self)
        if self.zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.last_bn.weight)

    def forward_features(self, x: Tensor) -> Tensor:
        """Feature map before pooling, ``[N, feature_dim, h, w]``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x).mean(dim=(2, 3)).contiguous()


def resnet18(
    in_channels: int = 3,
    image_size: int | tuple[int, int] | None = None,
    *,
    stem: str = "auto",
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-18 body, ``feature_dim = 512``."""
    return ResNet(BasicBlock, (2, 2, 2, 2), in_channels, stem, image_size, zero_init_residual)


def resnet50(
    in_channels: int = 3,
    image_size: int | tuple[int, int] | None = None,
    *,
    stem: str = "auto",
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-50 body, ``feature_dim = 2048``."""
    return ResNet(Bottleneck, (3, 4, 6, 3), in_channels, stem, image_size, zero_init_residual)


def _fixed_stem(builder, fixed: str):
    def factory(in_channels: int, image_size: int | tuple[int, int], **kwargs: Any) -> ResNet:
        stem = kwargs.pop("stem", fixed)
        if stem != fixed:
            raise ValueError(f"{builder.__name__}-{fixed} has a fixed stem={fixed!r}, got stem={stem!r}")
        return builder(in_channels, image_size, stem=fixed, **kwargs)

    factory.__name__ = f"{builder.__name__}_{fixed}"
    factory.__doc__ = f"{builder.__name__} with the {fixed} stem."
    return factory


register_backbone("resnet18")(resnet18)
register_backbone("resnet50")(resnet50)
for _builder in (resnet18, resnet50):
    for _stem in STEMS:
        register_backbone(f"{_builder.__name__}-{_stem}")(_fixed_stem(_builder, _stem))
del _builder, _stem
