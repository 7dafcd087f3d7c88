"""SimCLR (Chen et al. 2020): NT-Xent on the projections of two augmented views."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from probssl.config import MethodConfig, spec
from probssl.distributions import PointMass
from probssl.losses import info_nce
from probssl.methods.base import LOSS_PREDICTION_OBJECTIVES, Method
from probssl.methods.registry import register_method
from probssl.models import ProjectionHead


@dataclass
class SimCLRConfig(MethodConfig):
    temperature: float = spec(0.5, minimum=0.0, exclusive_minimum=True)  # tau of NT-Xent
    gather_distributed: bool = True  # under torchrun, every rank's samples act as negatives
    # Attach a loss-prediction head (Kirchhof et al. 2024) whose predicted loss is the score `predicted_loss`
    # (see probssl.methods.base); every contrastive config inherits these two fields.
    loss_prediction: bool = False
    loss_prediction_objective: str = spec("order", choices=LOSS_PREDICTION_OBJECTIVES)  # paper: order


@register_method
class SimCLR(Method):
    name = "simclr"
    config_class = SimCLRConfig

    def __init__(self, backbone: nn.Module, head: nn.Module, temperature: float = 0.5, gather: bool = True):
        super().__init__(backbone)
        self.head = head
        self.temperature = temperature
        self.gather = gather

    @classmethod
    def from_config(cls, backbone, config, image_shape):
        m = config.model
        head = ProjectionHead(backbone.feature_dim, m.head_hidden_dim, m.embed_dim, num_layers=m.head_layers)
        return cls(backbone, head, temperature=config.method.temperature, gather=config.method.gather_distributed)

    def forward_head(self, features: Tensor) -> Tensor:
        """[..., F] backbone features -> [..., d] unit-norm projections."""
        shape = features.shape
        z = self.head(features.reshape(-1, shape[-1]))
        return F.normalize(z, dim=-1).reshape(*shape[:-1], -1)

    def loss_terms(self, views, labels=None):
        z = self.forward_head(self.encode_views(views))
        return {"nt_xent": info_nce(z, self.temperature, self.gather)}

    def per_sample_loss(self, views, labels=None):
        """[V, N, ...] views -> [N] NT-Xent of each image, averaged over its views as anchors."""
        z = self.forward_head(self.encode_views(views))
        return info_nce(z, self.temperature, self.gather, reduction="none").mean(0)

    def posterior_from_features(self, features):
        return PointMass(self.forward_head(features))
