"""VICReg (Bardes, Ponce, LeCun 2022): variance-invariance-covariance regularisation.

No negatives: an expander (SimCLR-style MLP, 3 layers in the paper) maps backbone features to
embeddings, and :func:`probssl.losses.vicreg.vicreg_loss` pulls two views' embeddings together
(invariance) while keeping every dimension's std above 1 (variance) and the dimensions
decorrelated (covariance). For V > 2 views each term is averaged over the V(V-1)/2 view pairs.
Under torch.distributed the embeddings of every rank are gathered first (as the official code
does), so variances and covariances are those of the global batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from torch import Tensor, nn

from probssl.config import MethodConfig, spec
from probssl.distributions import PointMass
from probssl.losses import all_gather_with_grad
from probssl.losses.vicreg import vicreg_loss
from probssl.methods.base import Method
from probssl.methods.registry import register_method
from probssl.models import ProjectionHead


@dataclass
class VICRegConfig(MethodConfig):
    vicreg_sim: float = spec(25.0, minimum=0.0)  # invariance (MSE) coefficient
    vicreg_std: float = spec(25.0, minimum=0.0)  # variance hinge coefficient
    vicreg_cov: float = spec(1.0, minimum=0.0)  # covariance coefficient
    gather_distributed: bool = True  # batch statistics over every rank under torchrun


@register_method
class VICReg(Method):
    name = "vicreg"
    config_class = VICRegConfig

    def __init__(
        self,
        backbone: nn.Module,
        expander: nn.Module,
        sim: float = 25.0,
        std: float = 25.0,
        cov: float = 1.0,
        gather: bool = True,
    ):
        super().__init__(backbone)
        self.expander = expander
        self.sim, self.std, self.cov = sim, std, cov
        self.gather = gather

    @classmethod
    def from_config(cls, backbone, config, image_shape):
        m, c = config.model, config.method
        expander = ProjectionHead(backbone.feature_dim, m.head_hidden_dim, m.embed_dim, num_layers=m.head_layers)
        return cls(
            backbone, expander, sim=c.vicreg_sim, std=c.vicreg_std, cov=c.vicreg_cov, gather=c.gather_distributed
        )

    def forward_head(self, features: Tensor) -> Tensor:
        """[..., F] backbone features -> [..., D] expander outputs (not normalised)."""
        shape = features.shape
        return self.expander(features.reshape(-1, shape[-1])).reshape(*shape[:-1], -1)

    def loss_terms(self, views, labels=None):
        z = self.forward_head(self.encode_views(views))  # [V, N, D]
        if self.gather:  # [V, world * N, D]; a no-op in a single process
            z = all_gather_with_grad(z.transpose(0, 1).contiguous()).transpose(0, 1)
        pairs = list(combinations(range(z.shape[0]), 2))
        totals: dict[str, Tensor] = {}
        for i, j in pairs:
            for key, value in vicreg_loss(z[i], z[j], self.sim, self.std, self.cov).items():
                totals[key] = totals[key] + value if key in totals else value
        return {key: value / len(pairs) for key, value in totals.items()}

    def posterior_from_features(self, features):
        return PointMass(self.forward_head(features))
