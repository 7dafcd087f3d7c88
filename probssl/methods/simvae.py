"""SimVAE (Bizeul, Schölkopf, Allen 2024, "A Probabilistic Model behind Self-Supervised Learning").

Generative model of the J augmented views ``x_1..J`` of one image: a content variable ``y ~ p(y)``
(``method.content_prior``: N(0, I) or flat), latents ``z_j | y ~ N(y, s^2 I)`` (``s^2`` =
``method.prior_variance``, 0.15) and pixels ``x_j | z_j ~ p(x|z)`` through one decoder. With one
encoder ``q(z_j|x_j) = N(m_j, diag sigma_j^2)`` per view, the ELBO of the group is::

    ELBO = sum_j E_q[log p(x_j|z_j)] + E_q[log p(z_1..J)] + sum_j H[q(z_j|x_j)]

estimated with one reparameterised sample per view for the first two terms and the entropy in
closed form. ``log p(z_1..J)`` is :func:`~probssl.losses.generative.simvae_group_prior`: by default
the reference code's approximation ``-sum_j ||z_j - zbar||^2 / (2 s^2) + log p(y = zbar)``
(the joint evaluated at y = zbar), or with ``method.exact_marginal`` the exact marginal, where the
``||zbar||^2 / 2`` of the Gaussian content prior becomes ``||zbar||^2 / (2 (1 + s^2/J))``; the
derivation is in that function's docstring. All normalising constants are kept (they carry no
gradient; the reference code drops them).

Loss terms (all in nats per image, i.e. per group of J views, averaged over the batch):

* ``reconstruction`` = ``-mean_n sum_j log p(x_nj | z_nj)``;
* ``prior`` = ``-beta * mean_n log p(z_n1..nJ)``;
* ``entropy`` = ``-beta * mean_n sum_j H[q(z_nj | x_nj)]``; with ``method.entropy="official"``
  the release code's expression ``0.5 * sum 2 pi log sigma^2`` instead of the entropy (see
  :func:`~probssl.losses.generative.gaussian_entropy`: a multiplicative 2 pi where the entropy adds
  log 2 pi, so its gradient is 2 pi times too large; kept only to reproduce that code).

Their sum is the negative ELBO (beta = 1) to minimise. ``beta`` = ``method.beta`` weights the two
KL-like terms against the reconstruction, as in a beta-VAE; the default 1 is the ELBO.

Relation to the reference code (github.com/alicebizeul/simvae, ``src/model/models.py`` and
``priors.py``) -- why the MNIST presets set ``beta`` and ``adam_eps`` as they do:

* it *sums* every term over the batch (64 images x 2 views) instead of averaging over images; with
  Adam that only rescales the loss, which is the same as dividing Adam's eps by the batch size;
* for binarised data (MNIST, Fashion-MNIST) it divides the summed BCE by ``sigma_x^2 =
  exp(log_var_x) = exp(-4.6)`` too (``recon / math.exp(log_var_x)``), i.e. it multiplies the
  Bernoulli log-likelihood by ~99.5; dividing its whole loss by 99.5 gives this module's loss with
  ``beta = exp(-4.6) ~= 0.01005``. Its Gaussian likelihood is ``0.5 * MSE / sigma_x^2`` (the
  log-likelihood here up to constants) with ``beta = 1``.

So the reference's loss is ``64 * exp(4.6) ~= 6367`` times the loss here with ``beta = exp(-4.6)``,
and its ``Adam(lr=8e-5, eps=1e-4)`` is exactly ``Adam(lr=8e-5, eps=1e-4 / 6367 = 1.57e-8)`` here.

Evaluation: the posterior of one image is ``DiagonalNormal(m, sigma)``; the default representation is
its mean (the reference evaluates on the mean too). :meth:`~GenerativeMethod.reconstruct` decodes
the mean; :meth:`~GenerativeMethod.sample` decodes ``z`` from the marginal prior of one latent,
``N(0, (1 + s^2) I)`` for the Gaussian content prior; the flat prior has no proper marginal, so
``z ~ N(0, I)`` is used there (a convention for plots only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from probssl.config import spec
from probssl.losses.generative import CONTENT_PRIORS, ENTROPY_VARIANTS, gaussian_entropy, simvae_group_prior
from probssl.methods.generative import GenerativeConfig, GenerativeMethod
from probssl.methods.registry import register_method


@dataclass
class SimVAEConfig(GenerativeConfig):
    beta: float = spec(1.0, minimum=0.0)  # weight of the prior and entropy terms
    prior_variance: float = spec(0.15, minimum=0.0, exclusive_minimum=True)  # s^2 in p(z_j | y) = N(y, s^2 I)
    content_prior: str = spec("gaussian", choices=CONTENT_PRIORS)  # p(y)
    exact_marginal: bool = False  # exact marginal with the factor 1 / (1 + s^2 / J)
    entropy: str = spec("correct", choices=ENTROPY_VARIANTS)  # official: the release code's variant


@register_method
class SimVAE(GenerativeMethod):
    name = "simvae"
    config_class = SimVAEConfig

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        decoder: nn.Module,
        likelihood: str = "bernoulli",
        log_var_x: float = -4.6,
        prior_variance: float = 0.15,
        content_prior: str = "gaussian",
        exact_marginal: bool = False,
        entropy: str = "correct",
        beta: float = 1.0,
    ):
        super().__init__(backbone, head, decoder, likelihood, log_var_x)
        if content_prior not in CONTENT_PRIORS:
            raise ValueError(f"unknown content prior {content_prior!r}; valid priors: {', '.join(CONTENT_PRIORS)}")
        if entropy not in ENTROPY_VARIANTS:
            raise ValueError(f"unknown entropy variant {entropy!r}; valid variants: {', '.join(ENTROPY_VARIANTS)}")
        if not (math.isfinite(prior_variance) and prior_variance > 0):
            raise ValueError(f"prior_variance must be a finite number > 0, got {prior_variance}")
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.prior_variance = float(prior_variance)
        self.content_prior = content_prior
        self.exact_marginal = bool(exact_marginal)
        self.entropy = entropy
        self.beta = float(beta)

    @classmethod
    def from_config(cls, backbone, config, image_shape):
        c = config.method
        return cls(
            **cls.build_parts(backbone, config, image_shape),
            prior_variance=c.prior_variance,
            content_prior=c.content_prior,
            exact_marginal=c.exact_marginal,
            entropy=c.entropy,
            beta=c.beta,
        )

    def loss_terms(self, views: Tensor, labels: Tensor | None = None) -> dict[str, Tensor]:
        rec, loc, scale, z = self.view_elbo_parts(views)  # [J, N], [J, N, d] x 3
        log_prior = simvae_group_prior(z, self.prior_variance, self.content_prior, self.exact_marginal)  # [N]
        entropy = gaussian_entropy(scale, self.entropy).sum(0)  # [N]
        return {
            "reconstruction": -rec.sum(0).mean(),
            "prior": -self.beta * log_prior.mean(),
            "entropy": -self.beta * entropy.mean(),
        }

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """[n, d]: z ~ N(0, (1 + s^2) I), the marginal of one latent under the Gaussian content prior;
        z ~ N(0, I) for the (improper) flat content prior."""
        z = super().prior_sample(n, generator)
        return z * math.sqrt(1.0 + self.prior_variance) if self.content_prior == "gaussian" else z
