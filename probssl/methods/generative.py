"""The encoder / decoder / likelihood machinery shared by the VAE family (VAE, beta-VAE, CR-VAE,
SimVAE); not a registered method itself.

* encoder: the backbone + a :class:`~probssl.models.GaussianHead` (features -> ``(loc, scale)``, d =
  ``model.embed_dim``), a diagonal-Gaussian posterior ``q(z|x)`` per view;
* decoder: ``model.decoder`` (``"auto"`` = the mirror of ``model.backbone``: ``mlp-simvae`` ->
  ``mlp``, ``convnet`` -> ``conv`` with the backbone's ``model.width``, ``resnet*`` -> ``resnet``; a backbone
  without a mirror -- ``package.module:callable``, ``timm/``, ``torchvision/``, a plug-in -- gets one chosen from
  the image shape, conv for sides >= 8, else MLP, or a ConfigError saying which ``model.decoder`` to set),
  producing logits ``[N, C, H, W]``. ``Trainer(backbone=module)`` keeps ``model.backbone``'s mirror (default
  ``convnet`` -> conv) unless ``model.decoder`` is set;
* likelihood ``method.likelihood``: ``"bernoulli"`` (pixels ~ Bern(sigmoid(logits)); BCE with
  logits summed over pixels) or ``"gaussian"`` (pixels ~ N(sigmoid(logits), sigma_x^2) with fixed
  ``log sigma_x^2 = method.log_var_x``, all constants kept). The Gaussian mean is squashed by a
  sigmoid as in the SimVAE reference code, so means and reconstructions stay in [0, 1].

Every view goes through the encoder and the decoder in one batched call each. Loss terms are
computed in float32 (also under autocast).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from probssl.config import MethodConfig, spec
from probssl.distributions import DiagonalNormal
from probssl.losses.generative import bernoulli_log_likelihood, gaussian_log_likelihood
from probssl.methods.base import Method
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


@dataclass
class GenerativeConfig(MethodConfig):
    epistemic: bool = True  # fit the feature density when training ends: the reported score (docs/uncertainty.md)
    likelihood: str = spec("bernoulli", choices=LIKELIHOODS)  # bernoulli (BCE) | gaussian (fixed variance)
    log_var_x: float = -4.6  # log sigma_x^2 of the gaussian likelihood


class GenerativeMethod(Method):
    """Encoder (backbone + Gaussian head), decoder and pixel likelihood shared by the VAE family.

    Subclasses implement :meth:`loss_terms` and may override :meth:`prior_sample`.
    """

    probabilistic = True
    default_representation = "mean"
    posterior_class = DiagonalNormal
    config_class = GenerativeConfig
    # The epistemic head's score (GenerativeConfig.epistemic, on by default): at 20 epochs the posterior scores of
    # every VAE ranked an OOD set as more certain than the data (SimVAE's log_det_cov: 0.031 from Fashion-MNIST to
    # MNIST), the head's score stayed >= 0.987 (issue #16's suite; docs/uncertainty.md). Before the fit, and as the
    # aleatoric part of `combined`: log_det_cov (first for SimVAE on the 2-epoch suites).
    default_uncertainty = "epistemic"
    posterior_uncertainty = "log_det_cov"

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
    def forward_head(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """[..., F] backbone features -> (loc, scale) of q(z|x), each [..., d] float32."""
        lead = features.shape[:-1]
        loc, scale = self.head(features.reshape(-1, features.shape[-1]))
        return loc.reshape(*lead, -1).float(), scale.reshape(*lead, -1).float()

    def encode(self, views: Tensor) -> tuple[Tensor, Tensor]:
        """[V, N, C, H, W] -> (loc, scale), each [V, N, d] (one backbone and one head call)."""
        return self.forward_head(self.encode_views(views))

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
    def posterior_from_features(self, features: Tensor) -> DiagonalNormal:
        return DiagonalNormal(*self.forward_head(features))

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
