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

Both latent layers act on batch-normalised backbone features (see :class:`GaussianLatent`,
:class:`BernoulliLatent` for why).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from probssl.config import spec
from probssl.distributions import (
    DiagonalNormal,
    StraightThroughBernoulli,
    anneal_temperature,
    kl_bernoulli_uniform,
    kl_diagonal_normal_standard,
)
from probssl.losses import info_nce
from probssl.methods.base import Method
from probssl.methods.registry import register_method
from probssl.methods.simclr import SimCLRConfig
from probssl.models import BernoulliHead, GaussianHead, GaussianParams, ProjectionHead

LATENTS = ("gaussian", "bernoulli")


def compression_ratio(image_shape: tuple[int, int, int], representation_bits: int) -> float:
    """Bits of an 8-bit image over bits of its representation: C*H*W*8 / representation_bits.

    The paper's 2048-bit code of a 3x224x224 ImageNet image is 1,204,224 / 2048 = a 588x reduction.
    """
    c, h, w = image_shape
    return c * h * w * 8 / representation_bits


class GaussianLatent(nn.Module):
    """q(z|x) = N(m, diag sigma^2): ``BatchNorm1d`` on the backbone features, then a linear
    :class:`GaussianHead` (``num_layers=1``, initial sigma ~0.5).

    Normalising the features first matters: raw convnet features (post-ReLU, std ~0.3) give initial
    means far smaller than the sampling noise; on digits (20 epochs) the mean representation reached
    95% linear accuracy with the BatchNorm and 89% without, its covariance collapsed to ~3 directions.
    """

    def __init__(self, in_dim: int, latent_dim: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(in_dim)
        self.head = GaussianHead(in_dim, in_dim, latent_dim, num_layers=1)
        self.in_dim, self.out_dim = in_dim, latent_dim

    def forward(self, x: Tensor) -> GaussianParams:
        return self.head(self.norm(x))


class BernoulliLatent(nn.Module):
    """Logits of the latent bits: ``BatchNorm1d`` on the backbone features, then one linear layer.

    The linear weights start at ``init_gain`` (4) times PyTorch's default and the bias at 0, so the
    initial logits have std ~2 (sqrt(1/3) * 4 on normalised features) instead of ~0.3: most bits then
    already depend on the image (p far from 1/2) rather than being coin flips, so the hard-bit forward
    pass carries a contrastive signal from the first step, while the sigmoid is not yet saturated (the
    straight-through gradient r(1 - r)/tau is still large). On digits, with PyTorch's default init
    and no BatchNorm the bits stayed near coin flips and the 64-bit code reached 48% linear accuracy
    after the preset's 60 epochs; with this layer, 94%.
    """

    def __init__(self, in_dim: int, out_bits: int, init_gain: float = 4.0):
        super().__init__()
        self.norm = nn.BatchNorm1d(in_dim)
        self.head = BernoulliHead(in_dim, out_bits)
        with torch.no_grad():
            self.head.net.weight.mul_(init_gain)
            self.head.net.bias.zero_()
        self.in_dim, self.out_bits = in_dim, out_bits

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.norm(x))


@dataclass
class SCLConfig(SimCLRConfig):
    epistemic: bool = True  # fit the feature density when training ends: the reported score (docs/uncertainty.md)
    latent: str = spec("gaussian", choices=LATENTS)  # the latent-variable layer's family
    latent_dim: int = spec(128, minimum=1)  # size of the stochastic layer (number of bits for bernoulli)
    beta: float = spec(1e-3, minimum=0.0)  # KL summed over dims is tens of nats vs NT-Xent <= log 2N
    relax_temperature: list[float] = spec([1.0, 0.5])  # bernoulli: start, end (annealed)

    def check(self) -> list[str]:
        t = self.relax_temperature
        if len(t) != 2 or min(t) <= 0:
            return [f"method.relax_temperature must be two values > 0 (start, end), got {t}"]
        return []


@register_method
class SCL(Method):
    name = "scl"
    probabilistic = True
    posterior_class = DiagonalNormal  # StraightThroughBernoulli for the bernoulli latent (set per instance)
    config_class = SCLConfig
    # The epistemic head's score (SCLConfig.epistemic, on by default): at 20 epochs every posterior score of SCL
    # ranked some OOD set as more certain than the data (bit_entropy: noise at AUROC 0.001-0.003), the head's score
    # stayed >= 0.957 on every set (issue #16's suite; docs/uncertainty.md). Before the fit, and as the aleatoric part
    # of `combined`: the gaussian latent's trace (first on the 2-epoch suites), the bernoulli latent's bit_entropy.
    default_uncertainty = "epistemic"
    posterior_uncertainty = "trace"
    default_representation = "mean"  # "bits" for the bernoulli latent (set per instance)

    def __init__(
        self,
        backbone: nn.Module,
        latent_head: nn.Module,
        head: nn.Module,
        latent: str = "gaussian",
        temperature: float = 0.5,
        beta: float = 1e-3,
        relax_temperature: tuple[float, float] = (1.0, 0.5),
        gather: bool = True,
    ):
        super().__init__(backbone)
        if latent not in LATENTS:
            raise ValueError(f"Unknown SCL latent '{latent}'; choose from {', '.join(LATENTS)}")
        self.latent_head = latent_head
        self.head = head
        self.latent = latent
        self.temperature = temperature
        self.beta = beta
        self.gather = gather  # under torch.distributed, every rank's samples are negatives
        if len(relax_temperature) != 2 or min(relax_temperature) <= 0:
            raise ValueError(f"relax_temperature must be [start, end], both > 0; got {list(relax_temperature)}")
        self.relax_start, self.relax_end = (float(t) for t in relax_temperature)
        self.relax_temperature = self.relax_start  # set by on_step during training
        # The same value as a 0-dim buffer for the training pass: a Python float that changes every step is a
        # value guard under torch.compile (one recompile per step); a tensor's value is not guarded. Not
        # persistent (checkpoints keep their keys): on_step sets it before every step.
        self.register_buffer("relax_tau", torch.tensor(self.relax_start), persistent=False)
        self.latent_dim = int(latent_head.out_bits if latent == "bernoulli" else latent_head.out_dim)
        if latent == "bernoulli":
            self.default_representation = "bits"
            self.posterior_class = StraightThroughBernoulli

    @classmethod
    def from_config(cls, backbone, config, image_shape):
        m, c = config.model, config.method
        if c.latent == "bernoulli":
            latent_head = BernoulliLatent(backbone.feature_dim, c.latent_dim)
        else:
            latent_head = GaussianLatent(backbone.feature_dim, c.latent_dim)
        head = ProjectionHead(c.latent_dim, m.head_hidden_dim, m.embed_dim, num_layers=m.head_layers)
        return cls(
            backbone,
            latent_head,
            head,
            latent=c.latent,
            temperature=c.temperature,
            beta=c.beta,
            relax_temperature=tuple(c.relax_temperature),
            gather=c.gather_distributed,
        )

    def on_step(self, step: int, total_steps: int) -> None:
        # Reaches the end temperature on the last step (step total_steps - 1).
        self.relax_temperature = anneal_temperature(step, self.relax_start, self.relax_end, total_steps - 1)
        self.relax_tau.fill_(self.relax_temperature)

    def forward_head(
        self, features: Tensor, temperature: float | Tensor | None = None
    ) -> DiagonalNormal | StraightThroughBernoulli:
        """[M, F] backbone features -> q(z|x) with batch [M], event [latent_dim] (float32).

        temperature: the Bernoulli relaxation's (default: the current ``relax_temperature``); the training
        pass gives the ``relax_tau`` buffer."""
        if self.latent == "bernoulli":
            tau = self.relax_temperature if temperature is None else temperature
            return StraightThroughBernoulli(self.latent_head(features).float(), tau)
        loc, scale = self.latent_head(features)
        return DiagonalNormal(loc.float(), scale.float())

    def kl(self, q: DiagonalNormal | StraightThroughBernoulli) -> Tensor:
        """KL(q || prior) summed over latent dims, shape batch."""
        if self.latent == "bernoulli":
            return kl_bernoulli_uniform(q.logits)
        return kl_diagonal_normal_standard(q.loc, q.scale)

    def kl_to_prior(self, posterior) -> Tensor:
        return self.kl(posterior)

    def loss_terms(self, views, labels=None):
        v, n = views.shape[:2]
        q = self.forward_head(self.encode_views(views).reshape(v * n, -1), self.relax_tau)
        z = q.rsample()  # hard bits (straight-through) or m + sigma * eps
        p = F.normalize(self.head(z), dim=-1).reshape(v, n, -1)
        terms = {"nt_xent": info_nce(p, self.temperature, self.gather)}
        if self.beta:
            terms["kl"] = self.beta * self.kl(q).mean()
        return terms

    def per_sample_loss(self, views, labels=None):
        """[V, N, ...] views -> [N]: each image's NT-Xent (averaged over its views as anchors) plus beta
        times the mean KL of its views; the same computation as ``loss_terms``, not reduced over images."""
        v, n = views.shape[:2]
        q = self.forward_head(self.encode_views(views).reshape(v * n, -1), self.relax_tau)
        z = q.rsample()
        p = F.normalize(self.head(z), dim=-1).reshape(v, n, -1)
        loss = info_nce(p, self.temperature, self.gather, reduction="none").mean(0)
        if self.beta:
            loss = loss + self.beta * self.kl(q).reshape(v, n).mean(0)
        return loss

    def posterior_from_features(self, features):
        return self.forward_head(features)

    def representation_bits(self) -> int:
        """Storage of one representation: latent_dim bits, or latent_dim float32 numbers."""
        bits_per_dim = 1 if self.latent == "bernoulli" else 32
        return bits_per_dim * self.latent_dim
