"""A small, fast conv net for small grey or colour images (8x8 digits, 28x28 MNIST, 32x32 CIFAR).

Layout (``widths=(32, 64, 128)``)::

    stage_i = [conv3x3(stride s_i)-BN-ReLU, conv3x3(stride 1)-BN-ReLU]   for i = 1..3
    -> global average pool -> [N, feature_dim]

The number of stride-2 stages is chosen from ``image_size`` so that the final spatial side is
``<= 4``: 28 -> 14 -> 7 -> 4, 32 -> 16 -> 8 -> 4, 8 -> 4 (for 8x8 the first two stages keep
stride 1).  Images larger than ``4 * 2**len(widths)`` get extra stride-2 stages at the last
width.  There is no full-resolution stem: the first convolution already has stride 2 on
28x28 / 32x32 inputs, which keeps the net at ~8 MMAC per 28x28 image and > 2,000 img/s for a
forward + backward + AdamW step at batch 256 on two CPU threads (see
``benchmarks/backbone_speed.py``).

``model.to(memory_format=torch.channels_last)`` is supported transparently: inputs in either
memory format are accepted and the output is always a plain ``[N, feature_dim]`` tensor.
On CPU channels_last is ~15-30% faster for this net.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ._utils import halve, init_conv_bn, num_halvings, to_pair
from .registry import register_backbone

__all__ = ["ConvNet", "ConvBNReLU"]


class ConvBNReLU(nn.Sequential):
    """``Conv2d(k, stride, padding=k//2, bias=False) -> BatchNorm2d -> ReLU``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, kernel_size: int = 3):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


@register_backbone("convnet")
class ConvNet(nn.Module):
    """Small conv net sized automatically for the input resolution.

    Args:
        in_channels: image channels.
        image_size: input side (or ``(H, W)``); decides how many stages downsample.
        feature_dim: output dimension = channels of the last stage.  ``None`` (default) means
            ``round(widths[-1] * width)``, i.e. 128 for the defaults.
        width: multiplier applied to ``widths`` (not to an explicit ``feature_dim``).
        widths: base channel width of each stage.
        min_size: downsample until the spatial side is ``<= min_size``.

    Attributes:
        feature_dim: output feature dimension.
        final_size: ``(H, W)`` of the feature map before global pooling.
        strides: stride of each stage.
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int | tuple[int, int],
        feature_dim: int | None = None,
        width: float = 1.0,
        widths: Sequence[int] = (32, 64, 128),
        min_size: int = 4,
    ):
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        if not widths:
            raise ValueError("widths must be non-empty")
        h, w = to_pair(image_size)
        n_down = num_halvings((h, w), min_size)
        chans = [max(1, round(c * width)) for c in widths]
        n_stages = max(len(chans), n_down)
        chans += [chans[-1]] * (n_stages - len(chans))
        if feature_dim is not None:
            if feature_dim <= 0:
                raise ValueError(f"feature_dim must be positive, got {feature_dim}")
            chans[-1] = int(feature_dim)
        # Downsample in the *last* n_down stages so small inputs keep resolution early on.
        strides = [1] * (n_stages - n_down) + [2] * n_down

        stages = []
        prev = in_channels
        for c, s in zip(chans, strides):
            stages.append(nn.Sequential(ConvBNReLU(prev, c, s), ConvBNReLU(c, c, 1)))
            prev = c
            if s == 2:
                h, w = halve(h), halve(w)
        self.stages = nn.Sequential(*stages)
        self.in_channels = in_channels
        self.feature_dim: int = prev
        self.final_size: tuple[int, int] = (h, w)
        self.strides: tuple[int, ...] = tuple(strides)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init_conv_bn(self)

    def forward_features(self, x: Tensor) -> Tensor:
        """Feature map before pooling, ``[N, feature_dim, *final_size]``."""
        return self.stages(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x).mean(dim=(2, 3)).contiguous()
