"""MLP encoder body of SimVAE (Bizeul et al. 2024) for MNIST-like images.

``flatten -> Linear(C*H*W, 2000) -> ReLU -> Linear(2000, 500) -> ReLU -> Linear(500, 500) -> ReLU``,
``feature_dim = 500``.  The distribution head (e.g. :class:`~probssl.models.heads.GaussianHead`)
is put on top by the method; :class:`~probssl.models.decoders.MLPDecoder` is its mirror
(``d -> 500 -> 500 -> 2000 -> C*H*W``).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ._utils import to_pair
from .registry import register_backbone

__all__ = ["MLPEncoder", "SIMVAE_HIDDEN"]

SIMVAE_HIDDEN: tuple[int, ...] = (2000, 500, 500)


@register_backbone("mlp-simvae")
class MLPEncoder(nn.Module):
    """Fully connected encoder body on flattened images.

    Args:
        in_channels: image channels.
        image_size: image side or ``(H, W)``; inputs must have exactly this size.
        hidden_dims: layer widths; every layer is followed by ReLU.  ``feature_dim`` is the last.
    """

    def __init__(self, in_channels: int, image_size: int | tuple[int, int], hidden_dims: Sequence[int] = SIMVAE_HIDDEN):
        super().__init__()
        if not hidden_dims:
            raise ValueError("hidden_dims must be non-empty")
        h, w = to_pair(image_size)
        self.input_shape = (in_channels, h, w)
        layers: list[nn.Module] = []
        prev = in_channels * h * w
        for d in hidden_dims:
            layers += [nn.Linear(prev, int(d)), nn.ReLU(inplace=True)]
            prev = int(d)
        self.net = nn.Sequential(*layers)
        self.in_channels = in_channels
        self.feature_dim: int = prev

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"expected inputs of shape [N, {', '.join(map(str, self.input_shape))}], got {list(x.shape)}"
            )
        # reshape (not view): channels_last inputs are not view-compatible with flatten.
        return self.net(x.reshape(x.shape[0], -1))
