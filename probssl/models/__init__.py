"""Backbones, heads and decoders for probssl, with a timm-like backbone registry.

>>> from probssl.models import create_backbone, list_backbones
>>> net = create_backbone("convnet", in_channels=1, image_size=28)
>>> net.feature_dim
128

Backbones map float images ``[N, C, H, W]`` to features ``[N, feature_dim]``.  Registered:
``convnet``, ``mlp-simvae``, ``resnet18``, ``resnet50`` and the stem-fixed variants
``resnet18-cifar``, ``resnet18-imagenet``, ``resnet50-cifar``, ``resnet50-imagenet``.
"""
from .registry import BACKBONES, Registry, create_backbone, list_backbones, register_backbone
from .convnet import ConvBNReLU, ConvNet
from .resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet50
from .mlp import MLPEncoder
from .heads import BernoulliHead, GaussianHead, GaussianParams, LinearHead, ProjectionHead
from .decoders import (
    DECODERS,
    ConvDecoder,
    MLPDecoder,
    ResNetDecoder,
    create_decoder,
    decoder_for_backbone,
    list_decoders,
    register_decoder,
)

__all__ = [
    "BACKBONES",
    "Registry",
    "create_backbone",
    "list_backbones",
    "register_backbone",
    "ConvBNReLU",
    "ConvNet",
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "resnet18",
    "resnet50",
    "MLPEncoder",
    "ProjectionHead",
    "GaussianHead",
    "GaussianParams",
    "BernoulliHead",
    "LinearHead",
    "DECODERS",
    "register_decoder",
    "list_decoders",
    "create_decoder",
    "decoder_for_backbone",
    "MLPDecoder",
    "ConvDecoder",
    "ResNetDecoder",
]
