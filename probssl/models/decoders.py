"""Decoders for SimVAE / VAE: latent ``[N, latent_dim]`` -> image logits or means ``[N, C, H, W]``.

No output non-linearity is applied: the likelihood (Bernoulli logits, Gaussian mean, ...) is the
loss's business.

* :class:`MLPDecoder` -- mirror of ``mlp-simvae``: ``d -> 500 -> 500 -> 2000 -> C*H*W``.
* :class:`ConvDecoder` -- mirror of ``convnet``: Linear to the convnet's final map (4x4 for
  8/28/32 inputs), then transposed-conv stages retracing the encoder's sizes exactly
  (4 -> 7 -> 14 -> 28, 4 -> 8 -> 16 -> 32, 4 -> 8).
* :class:`ResNetDecoder` -- small residual upsampling decoder (4 -> 8 -> 16 -> 32 for 32x32),
  one residual block per resolution, widths mirroring ResNet-18 (512, 256, 128, 64).

A user's backbone (``package.module:callable``, ``timm/``, ``torchvision/``, a plug-in) has no mirror: its decoder
is chosen from the image shape (:func:`decoder_for_shape`: conv for sides >= 8, MLP for smaller images, else a
ConfigError saying which ``model.decoder`` to set).

:func:`create_decoder` builds one by decoder name, by the name of the backbone it should mirror,
or ``"auto"`` (from ``out_shape``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from probssl.config import ConfigError, did_you_mean

from ._utils import check_out_shape, halve, num_halvings
from .convnet import ConvBNReLU
from .registry import BACKBONES, Registry, is_entry_point, is_external

__all__ = [
    "DECODERS",
    "register_decoder",
    "list_decoders",
    "create_decoder",
    "decoder_for_backbone",
    "decoder_for_shape",
    "MLPDecoder",
    "ConvDecoder",
    "ResNetDecoder",
]

DECODERS = Registry("decoder")

# decoder_for_shape: images whose shorter side is at least this get the conv decoder (its transposed-conv stages
# retrace any H, W); smaller ones the MLP, while its output layer (2000 x C*H*W weights) stays at most
# MLP_MAX_OUTPUTS values wide (32M weights).
CONV_MIN_SIDE = 8
MLP_MAX_OUTPUTS = 16_384


def register_decoder(name: str, *, overwrite: bool = False):
    """Decorator registering a decoder factory ``f(latent_dim, out_shape, **kwargs)``."""
    return DECODERS.register(name, overwrite=overwrite)


def list_decoders() -> list[str]:
    return DECODERS.names()


def _init_convs(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _size_chain(out_hw: tuple[int, int], n: int) -> list[tuple[int, int]]:
    """``[(H, W), halve once, ..., halve n times]``."""
    chain = [out_hw]
    for _ in range(n):
        h, w = chain[-1]
        chain.append((halve(h), halve(w)))
    return chain


@register_decoder("mlp")
class MLPDecoder(nn.Module):
    """``Linear-ReLU`` stack ``latent_dim -> 500 -> 500 -> 2000`` then ``Linear -> C*H*W``, reshaped."""

    def __init__(self, latent_dim: int, out_shape: Sequence[int], hidden_dims: Sequence[int] = (500, 500, 2000)):
        super().__init__()
        self.out_shape = check_out_shape(out_shape)
        layers: list[nn.Module] = []
        prev = latent_dim
        for d in hidden_dims:
            layers += [nn.Linear(prev, int(d)), nn.ReLU(inplace=True)]
            prev = int(d)
        c, h, w = self.out_shape
        layers.append(nn.Linear(prev, c * h * w))
        self.net = nn.Sequential(*layers)
        self.latent_dim = latent_dim

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(z.shape[0], *self.out_shape)


@register_decoder("conv")
class ConvDecoder(nn.Module):
    """Mirror of :class:`~probssl.models.convnet.ConvNet`.

    ``Linear(latent_dim -> widths[-1] * h0 * w0)-BN-ReLU`` to the encoder's final map
    (``h0 x w0``, <= 4), then per encoder stage in reverse: ``ConvTranspose3x3(stride 2)-BN-ReLU``
    (or ``conv3x3-BN-ReLU`` where the encoder stage had stride 1) to the previous stage's width,
    followed by ``conv3x3-BN-ReLU``; finally ``conv3x3 -> C``.  ``output_padding`` is chosen per
    stage so the sizes retrace the encoder's exactly (28: 4 -> 7 -> 14 -> 28), no crop needed.
    """

    def __init__(
        self,
        latent_dim: int,
        out_shape: Sequence[int],
        width: float = 1.0,
        widths: Sequence[int] = (32, 64, 128),
        min_size: int = 4,
    ):
        super().__init__()
        self.out_shape = check_out_shape(out_shape)
        c_out, h, w = self.out_shape
        n_up = num_halvings((h, w), min_size)
        chans = [max(1, round(c * width)) for c in widths]
        n_stages = max(len(chans), n_up)
        chans += [chans[-1]] * (n_stages - len(chans))
        upsamples = [False] * (n_stages - n_up) + [True] * n_up  # encoder order
        sizes = _size_chain((h, w), n_up)  # sizes[k] = side after k halvings
        self.start_shape = (chans[-1], *sizes[-1])
        self.fc = nn.Sequential(
            nn.Linear(latent_dim, chans[-1] * sizes[-1][0] * sizes[-1][1], bias=False),
            nn.BatchNorm1d(chans[-1] * sizes[-1][0] * sizes[-1][1]),
            nn.ReLU(inplace=True),
        )
        stages: list[nn.Module] = []
        level = n_up  # current number of halvings w.r.t. the output
        for i in reversed(range(n_stages)):
            cin, cout = chans[i], chans[max(i - 1, 0)]
            if upsamples[i]:
                (hs, ws), (hb, wb) = sizes[level], sizes[level - 1]
                op = (hb - (2 * hs - 1), wb - (2 * ws - 1))  # 0 or 1
                first: nn.Module = nn.Sequential(
                    nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=op, bias=False),
                    nn.BatchNorm2d(cout),
                    nn.ReLU(inplace=True),
                )
                level -= 1
            else:
                first = ConvBNReLU(cin, cout, 1)
            stages.append(nn.Sequential(first, ConvBNReLU(cout, cout, 1)))
        self.stages = nn.Sequential(*stages)
        self.out = nn.Conv2d(chans[0], c_out, 3, padding=1)
        self.latent_dim = latent_dim
        _init_convs(self)
        nn.init.kaiming_normal_(self.out.weight, nonlinearity="linear")  # fan_in, no ReLU after

    def forward(self, z: Tensor) -> Tensor:
        x = self.fc(z).view(z.shape[0], *self.start_shape)
        return self.out(self.stages(x))


class UpResBlock(nn.Module):
    """Nearest-neighbour upsample to ``size`` then a BasicBlock ``cin -> cout``
    (``conv3x3-BN-ReLU-conv3x3-BN`` + ``conv1x1-BN`` shortcut when ``cin != cout``, ReLU after the sum)."""

    def __init__(self, cin: int, cout: int, size: tuple[int, int]):
        super().__init__()
        self.size = size
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = (
            nn.Identity() if cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="nearest")
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


@register_decoder("resnet")
class ResNetDecoder(nn.Module):
    """Residual upsampling decoder.

    ``Linear-BN-ReLU`` to a ``widths[0] x 4 x 4`` map, then one :class:`UpResBlock` per
    resolution doubling (``ceil``-halving chain of the output size, so 28 works too:
    4 -> 7 -> 14 -> 28), finally ``conv3x3 -> C``.  For 32x32: 512@4 -> 256@8 -> 128@16 -> 64@32.
    Smaller outputs use the last ``n_up + 1`` widths (8x8: 128@4 -> 64@8).

    Args:
        width: multiplier on ``widths``.
        widths: channels from the coarsest to the finest resolution.
        min_size: side of the initial map (as the encoders' final map, <= 4).
    """

    def __init__(
        self,
        latent_dim: int,
        out_shape: Sequence[int],
        width: float = 1.0,
        widths: Sequence[int] = (512, 256, 128, 64),
        min_size: int = 4,
    ):
        super().__init__()
        self.out_shape = check_out_shape(out_shape)
        c_out, h, w = self.out_shape
        n_up = num_halvings((h, w), min_size)
        chans = [max(1, round(c * width)) for c in widths]
        if n_up + 1 > len(chans):
            chans = [chans[0]] * (n_up + 1 - len(chans)) + chans
        chans = chans[len(chans) - (n_up + 1) :]
        sizes = _size_chain((h, w), n_up)[::-1]  # coarse -> fine
        self.start_shape = (chans[0], *sizes[0])
        numel = chans[0] * sizes[0][0] * sizes[0][1]
        self.fc = nn.Sequential(nn.Linear(latent_dim, numel, bias=False), nn.BatchNorm1d(numel), nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(*[UpResBlock(chans[k], chans[k + 1], sizes[k + 1]) for k in range(n_up)])
        self.out = nn.Conv2d(chans[-1], c_out, 3, padding=1)
        self.latent_dim = latent_dim
        _init_convs(self)
        nn.init.kaiming_normal_(self.out.weight, nonlinearity="linear")

    def forward(self, z: Tensor) -> Tensor:
        x = self.fc(z).view(z.shape[0], *self.start_shape)
        return self.out(self.blocks(x))


def decoder_for_shape(out_shape: Sequence[int], backbone: str = "a user backbone") -> str:
    """The decoder for images of ``out_shape`` (C, H, W) when the backbone has no mirror (a user's
    ``package.module:callable``, ``timm/``, ``torchvision/`` or a plug-in backbone): ``"conv"`` when the shorter
    side is >= ``CONV_MIN_SIDE`` (8), else ``"mlp"`` when C*H*W <= ``MLP_MAX_OUTPUTS``.

    Raises:
        ConfigError: for other shapes (tiny along one side, large overall), naming ``model.decoder`` and its choices.
    """
    c, h, w = check_out_shape(out_shape)
    if min(h, w) >= CONV_MIN_SIDE:
        return "conv"
    if c * h * w <= MLP_MAX_OUTPUTS:
        return "mlp"
    raise ConfigError(
        f"model.decoder: auto cannot choose a decoder for {backbone} at image shape (C, H, W) = ({c}, {h}, {w}): "
        f"a side below {CONV_MIN_SIDE} is too small for the conv decoder's stages to mirror an encoder, and an MLP "
        f"to {c * h * w:,} outputs would need {2000 * c * h * w:,} weights in its last layer. Set model.decoder to "
        "conv (transposed convolutions, any H x W), resnet (residual upsampling) or mlp."
    )


def decoder_for_backbone(name: str, out_shape: Sequence[int] | None = None) -> str:
    """Decoder name mirroring a backbone (or decoder) name.

    ``"mlp*"`` -> ``"mlp"``, ``"conv*"`` -> ``"conv"``, ``"resnet*"`` -> ``"resnet"``, a decoder
    name -> itself.  ``"auto"`` needs ``out_shape``: ``"resnet"`` for colour images with sides
    >= 32, else ``"conv"``. A backbone without a mirror (``package.module:callable``, ``timm/NAME``,
    ``torchvision/NAME``, another registered backbone) gets :func:`decoder_for_shape` (needs ``out_shape``).
    """
    if name in DECODERS:
        return name
    if name == "auto":
        if out_shape is None:
            raise ValueError("decoder 'auto' needs out_shape")
        c, h, w = check_out_shape(out_shape)
        return "resnet" if c >= 3 and min(h, w) >= 32 else "conv"
    without_mirror = is_entry_point(name) or is_external(name)
    for prefix, dec in (("mlp", "mlp"), ("conv", "conv"), ("resnet", "resnet")):
        if name.startswith(prefix) and not without_mirror:
            return dec
    if (without_mirror or name in BACKBONES) and out_shape is not None:
        return decoder_for_shape(out_shape, f"backbone {name!r}")
    known = DECODERS.names() + ["auto"] + BACKBONES.names()
    msg = f"No decoder for {name!r}.{did_you_mean(name, known, cutoff=0.5, n=3)}"
    msg += (
        f" Decoders: {', '.join(DECODERS.names())}; 'auto'; or a backbone name to mirror "
        f"({', '.join(BACKBONES.names())})."
    )
    raise ValueError(msg)


def create_decoder(name: str, latent_dim: int, out_shape: Sequence[int], **kwargs: Any) -> nn.Module:
    """Build a decoder ``[N, latent_dim] -> [N, *out_shape]``.

    Args:
        name: a decoder name (``"mlp"``, ``"conv"``, ``"resnet"``), a backbone name whose mirror
            is wanted (``"mlp-simvae"``, ``"convnet"``, ``"resnet18-cifar"``, ...; a backbone without one, e.g.
            ``package.module:callable``: chosen from ``out_shape`` by :func:`decoder_for_shape`), or ``"auto"``.
        latent_dim: latent dimension.
        out_shape: ``(C, H, W)`` of the images.
        **kwargs: forwarded to the decoder class (e.g. ``width``).
    """
    shape = check_out_shape(out_shape)
    if latent_dim <= 0:
        raise ValueError(f"latent_dim must be positive, got {latent_dim}")
    return DECODERS.create(decoder_for_backbone(name, shape), latent_dim, shape, **kwargs)
