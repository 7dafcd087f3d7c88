"""Backbones, heads and decoders for probssl, with a timm-like backbone registry.

>>> from probssl.models import create_backbone, list_backbones
>>> net = create_backbone("convnet", in_channels=1, image_size=28)
>>> net.feature_dim
128

Backbones map float images ``[N, C, H, W]`` to features ``[N, feature_dim]``.  Registered:
``convnet``, ``mlp-simvae``, ``resnet18``, ``resnet50`` and the stem-fixed variants
``resnet18-cifar``, ``resnet18-imagenet``, ``resnet50-cifar``, ``resnet50-imagenet``, and SimVAE's own
``simvae-resnet18`` (with its decoder of the same name).
"""

# The package exports exactly what each module lists in its __all__.
from . import convnet, decoders, heads, mlp, registry, resnet, simvae_resnet
from .convnet import *  # noqa: F401,F403
from .decoders import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .mlp import *  # noqa: F401,F403
from .registry import *  # noqa: F401,F403
from .resnet import *  # noqa: F401,F403
from .simvae_resnet import *  # noqa: F401,F403

__all__ = [*registry.__all__, *convnet.__all__, *resnet.__all__, *mlp.__all__, *heads.__all__, *decoders.__all__]
__all__ += simvae_resnet.__all__
