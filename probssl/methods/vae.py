"""VAE (Kingma & Welling 2014) and beta-VAE (Higgins et al. 2017) on augmented views.

Both maximise the ELBO ``E_q[log p(x|z)] - beta * KL(q(z|x) || N(0, I))`` of every augmented view,
each view treated as an independent sample (the baselines are trained on the same augmented
views as SimVAE, but without SimVAE's prior tying the views of an image together).

This module also holds :class:`GenerativeMethod`, the encoder / decoder / likelihood machinery
shared with SimVAE and CR-VAE (not registered itself):

* encoder: the backbone + a :class:`~probssl.models.GaussianHead` (features -> ``(loc, scale)``, d =
  ``model.embed_dim``), a diagonal-Gaussian posterior ``q(z|x)`` per view;
* decoder: ``model.decoder`` (``"auto"`` = the mirror of ``model.backbone``: ``mlp-simvae`` ->
  ``mlp``, ``convnet`` -> ``conv`` with the backbone's ``model.width``, ``resnet*`` -> ``resnet``),
  producing logits ``[N, C, H, W]``;
* likelihood ``method.likelihood``: ``"bernoulli"`` (pixels ~ Bern(sigmoid(logits)); BCE with
  logits summed over pixels) or ``"gaussian"`` (pixels ~ N(sigmoid(logits), sigma_x^2) with fixed
  ``log sigma_x^2 = method.log_var_x``, all constants kept). The Gaussian mean is squashed by a
  sigmoid as in the SimVAE reference code, so means and reconstructions stay in [0, 1].

Every view goes through the encoder and the decoder in one batched call each. Loss terms are
computed in float32 (also under autocast).
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor, nn

from probssl.distributions import DiagonalNormal, kl_diagonal_normal_standard
from probssl.losses.generative import bernoulli_log_likelihood, gaussian_log_likelihood
from probssl.methods.base import Method
from probssl.methods.registry import register_method
from probssl.models import GaussianHead, create_decoder, decoder_for_backbone

LIKELIHOODS = ("bernoulli", "gaussian")


@contextlib.contextmanager
def _eval_mode(module: nn.Module):
    """Run in eval mode (BatchNorm running statistics), restoring the previous mode after."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def build_decoder(config, image_shape: tuple[int, int, int]) -> nn.Module:
    """The decoder of ``config.model.decoder`` (``"auto"``: mirror of ``config.model.backbone``)."""
    m = config.model
    name = decoder_for_backbone(m.backbone if m.decoder == "auto" else m.decoder, image_shape)
    kwargs = {}
    if name in ("conv", "resnet") and m.width is not None:
        kwargs["width"] = m.width
    return create_decoder(name, m.embed_dim, image_shape, **kwargs)


class GenerativeMethod(Method):
    """Encoder (backbone + Gaussian head), decoder and pixel likelihood shared by the VAE family.

    Subclasses implement :meth:`loss_terms` and may override :meth:`prior_sample`.
    """

    probabilistic = True
    default_representation = "mean"

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        decoder: nn.Module,
        likelihood: str = "bernoulli",
        log_var_x: float = -4.6,
    ):
        super().__init__(backbone)
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {likelihood!r}; valid likelihoods: {', '.join(LIKELIHOODS)}")
        self.head = head
        self.decoder = decoder
        self.likelihood = likelihood
        self.log_var_x = float(log_var_x)

    @classmethod
    def build_parts(cls, backbone, config, image_shape) -> dict:
        """Head, decoder and likelihood settings from a config (the kwargs shared by every subclass)."""
        m, c = config.model, config.method
        head = GaussianHead(backbone.feature_dim, m.head_hidden_dim, m.embed_dim, num_layers=m.head_layers)
        return dict(
            backbone=backbone,
            head=head,
            decoder=build_decoder(config, image_shape),
            likelihood=c.likelihood,
            log_var_x=c.log_var_x,
        )

    @property
    def latent_dim(self) -> int:
        return self.head.out_dim

    # ------------------------------------------------------------------ encoder / decoder
    def encode(self, views: Tensor) -> tuple[Tensor, Tensor]:
        """[V, N, C, H, W] -> (loc, scale), each [V, N, d] (one backbone and one head call)."""
        feats = self.encode_views(views)
        v, n, f = feats.shape
        loc, scale = self.head(feats.reshape(v * n, f))
        return loc.reshape(v, n, -1).float(), scale.reshape(v, n, -1).float()

    def decode(self, z: Tensor) -> Tensor:
        """[..., d] latents -> [..., C, H, W] decoder logits (one decoder call), float32."""
        lead = z.shape[:-1]
        out = self.decoder(z.reshape(-1, z.shape[-1]))
        return out.reshape(*lead, *out.shape[1:]).float()

    def log_likelihood(self, logits: Tensor, x: Tensor) -> Tensor:
        """log p(x|z) summed over pixels: logits, x [..., C, H, W] -> [...]."""
        start = logits.ndim - 3
        if self.likelihood == "bernoulli":
            return bernoulli_log_likelihood(logits, x, start_dim=start)
        return gaussian_log_likelihood(torch.sigmoid(logits), x, self.log_var_x, start_dim=start)

    # ------------------------------------------------------------------ posterior / plots
    def posterior(self, images: Tensor) -> DiagonalNormal:
        loc, scale = self.encode(images.unsqueeze(0))
        return DiagonalNormal(loc[0], scale[0])

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """[n, d] draws from the marginal prior p(z) of one latent (N(0, I) here)."""
        device = next(self.parameters()).device
        return torch.randn(n, self.latent_dim, generator=generator).to(device)

    @torch.no_grad()
    def reconstruct(self, images: Tensor) -> Tensor:
        """[N, C, H, W] -> reconstructions [N, C, H, W] in [0, 1]: the decoded posterior mean
        (Bernoulli probabilities / Gaussian means), in eval mode."""
        with _eval_mode(self):
            return torch.sigmoid(self.decode(self.posterior(images).mean))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n images [n, C, H, W] in [0, 1]: z ~ the prior (:meth:`prior_sample`, drawn on the CPU
        ``generator``), decoded to pixel means, in eval mode."""
        with _eval_mode(self):
            return torch.sigmoid(self.decode(self.prior_sample(n, generator)))

    # ------------------------------------------------------------------ ELBO pieces
    def view_elbo_parts(self, views: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Encode, sample z = loc + scale * eps and decode every view.

        Returns (log p(x|z) [V, N], loc [V, N, d], scale [V, N, d], z [V, N, d]).
        """
        loc, scale = self.encode(views)
        z = DiagonalNormal(loc, scale).rsample()
        rec = self.log_likelihood(self.decode(z), views.float())
        return rec, loc, scale, z


@register_method
class VAE(GenerativeMethod):
    """Standard VAE on every augmented view: loss = mean over the V*N views of
    ``-log p(x|z) + beta * KL(q(z|x) || N(0, I))`` with one reparameterised sample and the KL in
    closed form (:func:`~probssl.distributions.kl_diagonal_normal_standard`).

    Terms: ``reconstruction`` (``-E_q log p(x|z)``, nats per view) and ``kl`` (beta-weighted). For
    ``vae`` beta is 1 (``method.beta`` must be left at 1; use ``beta-vae`` to change it).
    """

    name = "vae"

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
        if config.method.beta != 1.0:
            raise ValueError(
                f"method 'vae' has beta = 1 by definition, got method.beta={config.method.beta}; "
                "use method.name=beta-vae to weight the KL term."
            )
        return cls(**cls.build_parts(backbone, config, image_shape))

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

    @classmethod
    def from_config(cls, backbone, config, image_shape):
        return cls(**cls.build_parts(backbone, config, image_shape), beta=config.method.beta)
