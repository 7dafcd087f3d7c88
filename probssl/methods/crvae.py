"""CR-VAE (Sinha & Dieng 2021, "Consistency Regularization for Variational Auto-Encoders").

Objective to maximise, for an image x and a semantics-preserving transformation t(x)::

    ELBO(x) + ELBO(t(x)) - gamma * KL(q(z|t(x)) || q(z|x)),     gamma = method.gamma (1e-3)

where ``ELBO(x) = E_q[log p(x|z)] - beta * KL(q(z|x) || N(0, I))`` is the (beta-)VAE ELBO of
:class:`~probssl.methods.vae.VAE` (``beta = method.beta``, 1 by default), and the KL between the two
diagonal-Gaussian posteriors is in closed form
(:func:`~probssl.losses.generative.kl_diagonal_normals`), with gradients through both posteriors.

Views: the trainer always hands over augmented views ``[V, N, C, H, W]``. ``views[0]`` plays ``x``
and every other view plays a ``t(x)``: with the default V = 2 this is the paper's objective with
``x`` itself a (random) augmentation of the image -- equivalent to drawing x from the
augmentation distribution, which the ELBO(x) term then also models. For V > 2 the t(x) terms are
averaged over the V - 1 transformed views. (The paper's x is the raw image; getting exactly that
needs an un-augmented first view from the trainer.)

Loss terms (nats per image, averaged over the batch), their sum the negative objective:

* ``elbo_x`` = ``-ELBO(x)`` (reconstruction + beta * KL of views[0]);
* ``elbo_tx`` = ``-ELBO(t(x))`` (the same for views[1:], averaged over them);
* ``consistency`` = ``gamma * KL(q(z|t(x)) || q(z|x))`` (averaged over views[1:]); 0 when t(x) = x.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from probssl.config import spec
from probssl.distributions import kl_diagonal_normal_standard
from probssl.losses.generative import kl_diagonal_normals
from probssl.methods.generative import GenerativeConfig, GenerativeMethod
from probssl.methods.registry import register_method


@dataclass
class CRVAEConfig(GenerativeConfig):
    beta: float = spec(1.0, minimum=0.0)  # weight of both views' KL to N(0, I)
    gamma: float = spec(1e-3, minimum=0.0)  # consistency weight


@register_method
class CRVAE(GenerativeMethod):
    name = "cr-vae"
    config_class = CRVAEConfig

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        decoder: nn.Module,
        likelihood: str = "bernoulli",
        log_var_x: float = -4.6,
        gamma: float = 1e-3,
        beta: float = 1.0,
    ):
        super().__init__(backbone, head, decoder, likelihood, log_var_x)
        if gamma < 0 or beta < 0:
            raise ValueError(f"gamma and beta must be >= 0, got gamma={gamma}, beta={beta}")
        self.gamma = float(gamma)
        self.beta = float(beta)

    @classmethod
    def from_config(cls, backbone, config, image_shape):
        c = config.method
        return cls(**cls.build_parts(backbone, config, image_shape), gamma=c.gamma, beta=c.beta)

    def kl_to_prior(self, posterior) -> Tensor:
        """[B] KL(q(z|x) || N(0, I)), the ELBO's KL of one view (the consistency term pairs views)."""
        return kl_diagonal_normal_standard(posterior.loc.float(), posterior.scale.float())

    def loss_terms(self, views: Tensor, labels: Tensor | None = None) -> dict[str, Tensor]:
        if views.shape[0] < 2:
            raise ValueError(f"cr-vae needs at least 2 views (x and t(x)), got {views.shape[0]}")
        rec, loc, scale, _ = self.view_elbo_parts(views)  # [V, N], [V, N, d] x 2
        neg_elbo = -rec + self.beta * kl_diagonal_normal_standard(loc, scale)  # [V, N]
        consistency = kl_diagonal_normals(loc[1:], scale[1:], loc[:1], scale[:1])  # [V-1, N]
        return {
            "elbo_x": neg_elbo[0].mean(),
            "elbo_tx": neg_elbo[1:].mean(),
            "consistency": self.gamma * consistency.mean(),
        }
