"""SCL (Ramapuram, Busbridge, Suau, Webb 2021, "Stochastic Contrastive Learning").

A latent-variable layer q(z|x) sits between the backbone and SimCLR's projection head: a sample
z ~ q(z|x) is projected, normalised and trained with NT-Xent (InfoNCE for V > 2), and beta times
KL(q(z|x) || p(z)) is added. The KL is summed over the latent dimensions and averaged over every
view of every image. ``method.latent`` chooses the family:

* ``gaussian``: q = N(m, diag sigma^2) from one linear layer, reparameterised samples, prior N(0, I);
  the evaluated representation is the mean m.
* ``bernoulli``: q = independent bits with P(b = 1) = sigmoid(logits), prior Bernoulli(1/2). The
  forward pass uses hard bits; gradients use the straight-through binary-concrete relaxation, whose
  temperature is annealed from relax_temperature[0] to [1] over training. The representation is
  the bits 1[p > 1/2]: a latent_dim-bit code of the image.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from probssl.distributions import (DiagonalNormal, StraightThroughBernoulli, anneal_temperature,
                                   kl_bernoulli_uniform, kl_diagonal_normal_standard)
from probssl.losses import info_nce
from probssl.methods.base import Method
from probssl.methods.registry import register_method
from probssl.models import BernoulliHead, GaussianHead, ProjectionHead

LATENTS = ("gaussian", "bernoulli")


def compression_ratio(image_shape: tuple[int, int, int], representation_bits: int) -> float:
    """Bits of an 8-bit image over bits of its representation: C*H*W*8 / representation_bits.

    The paper's 2048-bit code of a 3x224x224 ImageNet image is 1,204,224 / 2048 = a 588x reduction.
    """
    c, h, w = image_shape
    return c * h * w * 8 / representation_bits


@register_method
class SCL(Method):
    name = "scl"
    probabilistic = True
    default_representation = "mean"  # "bits" for the bernoulli latent (set per instance)

    def __init__(self, backbone: nn.Module, latent_head: nn.Module, head: nn.Module, latent: str = "gaussian",
                 temperature: float = 0.5, beta: float = 1e-3, relax_temperature: tuple[float, float] = (1.0, 0.5)):
        super().__init__(backbone)
        if latent not in LATENTS:
            raise ValueError(f"Unknown SCL latent '{latent}'; choose from {', '.join(LATENTS)}")
        self.latent_head = latent_head
        self.head = head
        self.latent = latent
        self.temperature = temperature
        self.beta = beta
        self.relax_start, self.relax_end = (float(t) for t in relax_temperature)
        self.relax_temperature = self.relax_start  # set by on_step during training
        self.latent_dim = int(latent_head.out_bits if latent == "bernoulli" else latent_head.out_dim)
        if latent == "bernoulli":
            self.default_representation = "bits"

    @classmethod
    def from_config(cls, backbone, config, image_shape):
        m, c = config.model, config.method
        if c.latent == "bernoulli":
            latent_head = BernoulliHead(backbone.feature_dim, c.latent_dim)
        else:
            latent_head = GaussianHead(backbone.feature_dim, m.head_hidden_dim, c.latent_dim, num_layers=1)
        head = ProjectionHead(c.latent_dim, m.head_hidden_dim, m.embed_dim, num_layers=m.head_layers)
        return cls(backbone, latent_head, head, latent=c.latent, temperature=c.temperature, beta=c.beta,
                   relax_temperature=tuple(c.relax_temperature))

    def on_step(self, step: int, total_steps: int) -> None:
        # Reaches the end temperature on the last step (step total_steps - 1).
        self.relax_temperature = anneal_temperature(step, self.relax_start, self.relax_end, total_steps - 1)

    def latent_posterior(self, features: Tensor) -> DiagonalNormal | StraightThroughBernoulli:
        """[M, F] backbone features -> q(z|x) with batch [M], event [latent_dim] (float32)."""
        if self.latent == "bernoulli":
            return StraightThroughBernoulli(self.latent_head(features).float(), self.relax_temperature)
        loc, scale = self.latent_head(features)
        return DiagonalNormal(loc.float(), scale.float())

    def kl(self, q: DiagonalNormal | StraightThroughBernoulli) -> Tensor:
        """KL(q || prior) summed over latent dims, shape batch."""
        if self.latent == "bernoulli":
            return kl_bernoulli_uniform(q.logits)
        return kl_diagonal_normal_standard(q.loc, q.scale)

    def loss_terms(self, views, labels=None):
        v, n = views.shape[:2]
        q = self.latent_posterior(self.encode_views(views).reshape(v * n, -1))
        z = q.rsample()  # hard bits (straight-through) or m + sigma * eps
        p = F.normalize(self.head(z), dim=-1).reshape(v, n, -1)
        terms = {"nt_xent": info_nce(p, self.temperature)}
        if self.beta:
            terms["kl"] = self.beta * self.kl(q).mean()
        return terms

    def posterior(self, images):
        return self.latent_posterior(self.features(images))

    def representation_bits(self) -> int:
        """Storage of one representation: latent_dim bits, or latent_dim float32 numbers."""
        bits_per_dim = 1 if self.latent == "bernoulli" else 32
        return bits_per_dim * self.latent_dim
