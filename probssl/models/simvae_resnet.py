"""SimVAE's own CIFAR-10 / CelebA networks (Bizeul, Schölkopf, Allen 2024), rebuilt from the official code's
description: backbone ``simvae-resnet18`` and decoder ``simvae-resnet18``.

Encoder body (official ``Encoder(resnet18=True)``): a ResNet-18 of half width, truncated after its third stage.

* stem: ``Conv2d(C, 64, 3, stride 1, no padding, bias)`` for images up to 32 px (``Conv2d(C, 64, 4, stride 1,
  no padding, no bias)`` for larger ones, e.g. CelebA 64x64) -> ``BN(64)`` -> ReLU -> ``MaxPool(3, 2, 1)``;
* stages of two BasicBlocks, widths 32 (stride 1), 64 (stride 2), 128 (stride 2). As in the official code every
  stage's first block has a 1x1-conv + BN shortcut, even the stride-1 one (its input has 64 channels);
* flatten: 32x32 -> 30 -> 15 -> 15 -> 8 -> 4, so ``feature_dim = 128 * 4 * 4 = 2048``; 64x64 -> 61 -> 31 -> 31
  -> 16 -> 8: 8192. The official head ``Linear(2048, 2d)`` is probssl's Gaussian head with one layer
  (``model.head_layers: 1``).

Decoder (official ``ResNetDec18``, output sizes 32 or 64): ``Linear(d, 512 * s * s)`` viewed as 512 x s x s
(s = 2 for 32 px, 4 for 64 px), then four stages of two transposed-conv blocks -- 256, 128 and 64 channels, each
doubling the side, and a last 64-channel stage at the same size -- and ``ConvTranspose2d(64, C, 7, stride 2,
padding 3, output_padding 1)``: 2 -> 4 -> 8 -> 16 -> 16 -> 32. A block is ``ConvT3x3 -> BN -> ReLU -> ConvT3x3 ->
BN``; only the side-doubling last block of a stage adds a shortcut (``ConvT1x1(stride 2) -> BN``), the others
have none, as in the official code. Its unused ``BatchNorm2d(3)`` is kept so parameter counts match. The
decoder returns logits (probssl's likelihood applies the output non-linearity; the official code applies a
sigmoid and a Gaussian likelihood on it).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ._utils import check_out_shape, to_pair
from .decoders import register_decoder
from .registry import register_backbone

__all__ = ["SimVAEResNetEncoder", "SimVAEResNetDecoder"]

_STAGES = ((32, 1), (64, 2), (128, 2))  # (width, stride) of the three kept ResNet-18 stages, half width


class _BasicBlock(nn.Module):
    """ResNet BasicBlock ``[N, cin, H, W] -> [N, cout, H / stride, W / stride]`` with an optional 1x1 shortcut."""

    def __init__(self, cin: int, cout: int, stride: int, shortcut: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)) if shortcut else None
        )

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + (self.shortcut(x) if self.shortcut is not None else x))


@register_backbone("simvae-resnet18")
class SimVAEResNetEncoder(nn.Module):
    """SimVAE's CIFAR / CelebA encoder body: float images ``[N, C, H, W]`` -> features ``[N, feature_dim]``.

    Args:
        in_channels: image channels. image_size: side (or ``(H, W)``); <= 32 uses the 3x3 stem, else the 4x4 one.
    """

    def __init__(self, in_channels: int = 3, image_size: int | tuple[int, int] = 32):
        super().__init__()
        h, w = to_pair(image_size)
        small = max(h, w) <= 32
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 64, 3, 1, bias=True) if small else nn.Conv2d(in_channels, 64, 4, 1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        stages, cin = [], 64
        for width, stride in _STAGES:
            stages.append(
                nn.Sequential(_BasicBlock(cin, width, stride, shortcut=True), _BasicBlock(width, width, 1, False))
            )
            cin = width
        self.stages = nn.Sequential(*stages)
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m is not self.stem[0]:  # the official stem conv keeps torch's init
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        k = 3 if small else 4
        side_h, side_w = _encoded_side(h, k), _encoded_side(w, k)
        self.final_shape = (cin, side_h, side_w)
        self.feature_dim: int = cin * side_h * side_w

    def forward(self, x: Tensor) -> Tensor:
        return self.stages(self.stem(x)).flatten(1)


def _encoded_side(side: int, stem_kernel: int) -> int:
    """Side after the stem conv (no padding), the max-pool (3, 2, 1) and two stride-2 stages (3x3, padding 1)."""
    side = side - stem_kernel + 1
    for _ in range(3):
        side = (side - 1) // 2 + 1
    return side


class _UpBlock(nn.Module):
    """``ConvT3x3(stride) -> BN -> ReLU -> ConvT3x3 -> BN`` (+ a ``ConvT1x1(stride) -> BN`` shortcut when
    ``shortcut``) -> ReLU: ``[N, cin, H, W] -> [N, cout, H * stride, W * stride]``."""

    def __init__(self, cin: int, cout: int, stride: int = 1, shortcut: bool = False):
        super().__init__()
        pad_out = 1 if stride == 2 else 0
        self.conv1 = nn.ConvTranspose2d(cin, cout, 3, stride, 1, output_padding=pad_out, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.ConvTranspose2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = (
            nn.Sequential(
                nn.ConvTranspose2d(cin, cout, 1, stride, output_padding=pad_out, bias=False), nn.BatchNorm2d(cout)
            )
            if shortcut
            else None
        )

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + self.shortcut(x) if self.shortcut is not None else out)


@register_decoder("simvae-resnet18")
class SimVAEResNetDecoder(nn.Module):
    """SimVAE's CIFAR / CelebA decoder: latent ``[N, latent_dim]`` -> logits ``[N, C, H, W]``, H = W in {32, 64}."""

    def __init__(self, latent_dim: int, out_shape: Sequence[int]):
        super().__init__()
        self.out_shape = check_out_shape(out_shape)
        c_out, h, w = self.out_shape
        if h != w or h not in (32, 64):
            raise ValueError(
                f"decoder 'simvae-resnet18' makes 32x32 or 64x64 images (as SimVAE's), not {h}x{w}; "
                "set model.decoder: conv or resnet for other sizes"
            )
        self.side = 2 if h == 32 else 4
        self.linear = nn.Linear(latent_dim, 512 * self.side * self.side)
        stages = []
        for cin, cout in ((512, 256), (256, 128), (128, 64)):  # each stage doubles the side
            stages.append(nn.Sequential(_UpBlock(cin, cin), _UpBlock(cin, cout, 2, shortcut=True)))
        stages.append(nn.Sequential(_UpBlock(64, 64), _UpBlock(64, 64)))
        self.stages = nn.Sequential(*stages)
        self.unused_bn = nn.BatchNorm2d(3)  # defined and never used by the official ResNetDec18: parity of counts
        self.out = nn.ConvTranspose2d(64, c_out, 7, 2, 3, output_padding=1)
        self.latent_dim = latent_dim

    def forward(self, z: Tensor) -> Tensor:
        x = self.linear(z).view(z.shape[0], 512, self.side, self.side)
        return self.out(self.stages(x))
