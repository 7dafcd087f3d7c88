"""VSimCLR (Jeong, Kim, Hero 2025, "Variational Contrastive Learning").

The head outputs a projected-normal posterior q(z|x) = PN(m, diag sigma^2) on S^{d-1}. InfoNCE is
computed on reparameterised samples z = (m + sigma*eps)/||m + sigma*eps||, and beta times the
(normalised) KL from q to the uniform distribution on the sphere is added, averaged over every
view of every image.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from probssl.config import spec
from probssl.distributions import KL_ESTIMATORS, ProjectedNormal, kl_projected_normal_uniform
from probssl.losses import info_nce
from probssl.methods.base import Method
from probssl.methods.registry import register_method
from probssl.methods.simclr import SimCLRConfig
from probssl.models import GaussianHead


@dataclass
class VSimCLRConfig(SimCLRConfig):
    beta: float = spec(1.0, minimum=0.0)  # weight of the KL term
    kl_estimator: str = spec("scaled-bound", choices=KL_ESTIMATORS)  # how KL(q || uniform sphere) is estimated
    kl_normalize: bool = True  # divide the KL by d (VCL's normalised KL)
    kl_samples: int = spec(16, minimum=1)  # Monte-Carlo samples for kl_estimator=mc


@register_method
class VSimCLR(Method):
    name = "vsimclr"
    probabilistic = True
    posterior_class = ProjectedNormal
    config_class = VSimCLRConfig

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        temperature: float = 0.5,
        beta: float = 1.0,
        kl_estimator: str = "scaled-bound",
        kl_normalize: bool = True,
        kl_samples: int = 16,
        gather: bool = True,
    ):
        super().__init__(backbone)
        self.head = head
        self.temperature = temperature
        self.beta = beta
        self.kl_estimator = kl_estimator
        self.kl_normalize = kl_normalize
        self.kl_samples = kl_samples
        self.gather = gather

    @classmethod
    def from_config(cls, backbone, config, image_shape):
        m, c = config.model, config.method
        head = GaussianHead(backbone.feature_dim, m.head_hidden_dim, m.embed_dim, num_layers=m.head_layers)
        return cls(
            backbone,
            head,
            temperature=c.temperature,
            beta=c.beta,
            kl_estimator=c.kl_estimator,
            kl_normalize=c.kl_normalize,
            kl_samples=c.kl_samples,
            gather=c.gather_distributed,
        )

    def forward_head(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """[..., F] -> (loc, scale), each [..., d]."""
        shape = features.shape
        loc, scale = self.head(features.reshape(-1, shape[-1]))
        return loc.reshape(*shape[:-1], -1), scale.reshape(*shape[:-1], -1)

    def loss_terms(self, views, labels=None):
        loc, scale = self.forward_head(self.encode_views(views))  # [V, N, d] each
        z = ProjectedNormal(loc.float(), scale.float()).rsample()
        terms = {"nt_xent": self.contrastive(z, labels)}
        if self.beta:
            kl = kl_projected_normal_uniform(
                loc.float(),
                scale.float(),
                estimator=self.kl_estimator,
                normalize=self.kl_normalize,
                num_samples=self.kl_samples,
            )
            terms["kl"] = self.beta * kl.mean()
        return terms

    def contrastive(self, z: Tensor, labels: Tensor | None) -> Tensor:
        """[V, N, d] samples on the sphere -> scalar contrastive loss."""
        return info_nce(z, self.temperature, self.gather)

    def posterior(self, images):
        loc, scale = self.forward_head(self.forward_features(images))
        return ProjectedNormal(loc, scale)
