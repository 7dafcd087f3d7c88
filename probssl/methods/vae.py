"""VAE (Kingma & Welling 2014) and beta-VAE (Higgins et al. 2017) on augmented views.

Both maximise the ELBO ``E_q[log p(x|z)] - beta * KL(q(z|x) || N(0, I))`` of every augmented view,
each view treated as an independent sample (the baselines are trained on the same augmented
views as SimVAE, but without SimVAE's prior tying the views of an image together). The encoder,
decoder and likelihood are :class:`~probssl.methods.generative.GenerativeMethod`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from probssl.config import spec
from probssl.distributions import kl_diagonal_normal_standard
from probssl.methods.generative import GenerativeConfig, GenerativeMethod
from probssl.methods.registry import register_method


@dataclass
class BetaVAEConfig(GenerativeConfig):
    beta: float = spec(4.0, minimum=0.0)  # weight of the KL term


@register_method
class VAE(GenerativeMethod):
    """Standard VAE on every augmented view: loss = mean over the V*N views of
    ``-log p(x|z) + beta * KL(q(z|x) || N(0, I))`` with one reparameterised sample and the KL in
    closed form (:func:`~probssl.distributions.kl_diagonal_normal_standard`).

    Terms: ``reconstruction`` (``-E_q log p(x|z)``, nats per view) and ``kl`` (beta-weighted). For
    ``vae`` beta is 1 (its config has no ``beta``: use ``beta-vae`` to weight the KL).
    """

    name = "vae"
    config_class = GenerativeConfig  # no beta: it is 1 by definition (beta-vae weights the KL)

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        decoder: nn.Module,
        likelihood: str = "bernoulli",
        log_var_x: float = -4.6,
        beta: float = 1.0,
    ):
        super().__init__(backbone, head, decoder, likelihood, log_var_x)
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.beta = float(beta)

    @classmethod
    def from_config(cls, backbone, config, image_shape):
        return cls(**cls.build_parts(backbone, config, image_shape))

    def kl_to_prior(self, posterior) -> Tensor:
        """[B] KL(q(z|x) || N(0, I)) of a diagonal-normal posterior."""
        return kl_diagonal_normal_standard(posterior.loc.float(), posterior.scale.float())

    def loss_terms(self, views, labels=None):
        rec, loc, scale, _ = self.view_elbo_parts(views)
        terms = {"reconstruction": -rec.mean()}
        terms["kl"] = self.beta * kl_diagonal_normal_standard(loc, scale).mean()
        return terms


@register_method
class BetaVAE(VAE):
    """beta-VAE (Higgins et al. 2017, *beta-VAE: Learning Basic Visual Concepts with a Constrained
    Variational Framework*): the VAE objective with the KL weighted by ``method.beta``."""

    name = "beta-vae"
    config_class = BetaVAEConfig

    @classmethod
    def from_config(cls, backbone, config, image_shape):
        return cls(**cls.build_parts(backbone, config, image_shape), beta=config.method.beta)
