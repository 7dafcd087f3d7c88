"""Terms of generative (VAE-family) objectives: pure functions, shapes in the docstrings.

Conventions: every function returns a *log-density-like* quantity or a KL per sample (summed over
pixels / latent dimensions), never a batch reduction; the method decides how to reduce. Pixel
likelihoods reduce over every dimension after the first (``[N, C, H, W] -> [N]``, or more
generally ``[..., C, H, W]`` flattened from ``start_dim``).

* :func:`bernoulli_log_likelihood` -- ``log p(x|z)`` for Bernoulli pixels from decoder logits.
* :func:`gaussian_log_likelihood` -- ``log p(x|z)`` for pixels ``N(mean, exp(log_var))``.
* :func:`gaussian_entropy` -- entropy of a diagonal Gaussian posterior (correct, or the SimVAE
  release code's variant).
* :func:`simvae_group_prior` -- SimVAE's ``log p(z_1, ..., z_J)`` for the J views of an image.
* :func:`kl_diagonal_normals` -- ``KL(N(m_q, diag s_q^2) || N(m_p, diag s_p^2))``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from probssl.distributions.gaussian import kl_diagonal_normals  # one implementation, re-exported here

__all__ = [
    "ENTROPY_VARIANTS",
    "CONTENT_PRIORS",
    "bernoulli_log_likelihood",
    "gaussian_log_likelihood",
    "gaussian_entropy",
    "simvae_group_prior",
    "kl_diagonal_normals",
]

_LOG_2PI = math.log(2.0 * math.pi)

#: Valid ``variant`` values of :func:`gaussian_entropy`.
ENTROPY_VARIANTS = ("correct", "official")
#: Valid ``content_prior`` values of :func:`simvae_group_prior`.
CONTENT_PRIORS = ("gaussian", "uniform")


def _sum_from(x: Tensor, start_dim: int) -> Tensor:
    return x.flatten(start_dim).sum(-1)


def bernoulli_log_likelihood(logits: Tensor, x: Tensor, start_dim: int = 1) -> Tensor:
    """Sum over pixels of ``log Bern(x | sigmoid(logits))`` = ``-BCE_with_logits(logits, x)``.

    Args:
        logits: decoder output ``[N, C, H, W]`` (any shape; pixels are the dims from ``start_dim``).
        x: targets of the same shape, in [0, 1]. Non-binary targets give the usual "BCE on grey
            levels" (the cross-entropy of the Bernoulli, not a normalised density on [0, 1]).
        start_dim: first pixel dimension (1 for ``[N, C, H, W]``, 2 for ``[V, N, C, H, W]``).

    Returns:
        ``[N]`` (the shape before ``start_dim``): ``sum x*log(p) + (1-x)*log(1-p)``, computed stably
        from logits (``F.binary_cross_entropy_with_logits``), <= 0.
    """
    return -_sum_from(F.binary_cross_entropy_with_logits(logits, x, reduction="none"), start_dim)


def gaussian_log_likelihood(mean: Tensor, x: Tensor, log_var: float | Tensor, start_dim: int = 1) -> Tensor:
    """Sum over pixels of ``log N(x | mean, sigma_x^2)`` with ``log sigma_x^2 = log_var``.

    ``-0.5 * [(x - mean)^2 / sigma_x^2 + log sigma_x^2 + log 2 pi]`` per pixel, all constants kept.

    Args:
        mean: decoder output ``[N, C, H, W]``.
        x: targets, same shape.
        log_var: fixed log variance (a float, e.g. SimVAE's -4.6) or a tensor broadcastable to ``x``.
        start_dim: first pixel dimension.

    Returns:
        ``[N]``.
    """
    log_var = torch.as_tensor(log_var, dtype=mean.dtype, device=mean.device)
    per_pixel = -0.5 * ((x - mean).pow(2) * torch.exp(-log_var) + log_var + _LOG_2PI)
    return _sum_from(per_pixel, start_dim)


def gaussian_entropy(scale: Tensor, variant: str = "correct") -> Tensor:
    """Entropy of ``N(m, diag sigma^2)`` from ``scale = sigma`` ``[..., d]`` -> ``[...]``.

    ``"correct"``: ``H = 0.5 * sum_i log(2 pi e sigma_i^2) = sum_i [0.5 (1 + log 2 pi) + log sigma_i]``,
    the differential entropy (equal to ``DiagonalNormal(loc, scale).entropy()``).

    ``"official"``: ``0.5 * sum_i 2 pi * log sigma_i^2 = 2 pi * sum_i log sigma_i`` -- the SimVAE release
    code's expression (``src/model/models.py``, ``BaseVAE.recon_and_entropy``, written there as
    ``0.5 torch.sum(2*math.pi*log_var_z)``), which multiplies by 2 pi where the entropy adds log 2 pi.
    It is NOT an entropy: its gradient w.r.t. ``log sigma_i`` is 2 pi instead of 1, i.e. it weights
    the entropy term ~6.28x against the reconstruction and prior, and it drops the constant
    ``0.5 d (1 + log 2 pi)``. (An earlier commit of the same code used ``0.5 * sum(log sigma^2 + 1)``,
    the correct entropy minus ``0.5 d log 2 pi``, which has the correct gradient.) Kept only to
    reproduce the release code.
    """
    log_scale = torch.log(scale)
    if variant == "correct":
        return (0.5 * (1.0 + _LOG_2PI) + log_scale).sum(-1)
    if variant == "official":
        return (0.5 * (2.0 * math.pi) * (2.0 * log_scale)).sum(-1)
    raise ValueError(f"unknown entropy variant {variant!r}; valid variants: {', '.join(ENTROPY_VARIANTS)}")


def simvae_group_prior(z: Tensor, s2: float, content_prior: str = "gaussian", exact_marginal: bool = False) -> Tensor:
    r"""SimVAE's log prior ``log p(z_1, ..., z_J)`` of the J latents of each image -> ``[N]``.

    The generative model (Bizeul et al. 2024): a content variable ``y ~ p(y)`` per image, and the
    latent of each of its J views ``z_j | y ~ N(y, s^2 I)`` independently (``s^2`` =
    ``method.prior_variance``, 0.15). Write ``zbar = (1/J) sum_j z_j`` and
    ``S = sum_j ||z_j - zbar||^2``.

    **Approximate (default, as in the reference code)**: instead of integrating ``y`` out, evaluate
    the joint ``p(z_1..J, y)`` at ``y = zbar`` (the maximiser over y of ``sum_j log p(z_j | y)``)::

        log p(z_1..J) ~= sum_j log N(z_j; zbar, s^2 I) + log p(y = zbar)
                      = -S / (2 s^2) - (J d / 2) log(2 pi s^2) + log p(zbar),

    with ``log p(zbar) = -||zbar||^2 / 2 - (d/2) log 2 pi`` for ``content_prior="gaussian"``
    (``p(y) = N(0, I)``) and ``log p(y) = 0`` for ``"uniform"`` (an improper flat prior; the
    reference code adds the constant ``log(num_data)`` instead, which has no gradient). The
    reference code drops every normalising constant; here they are all kept, so the value is a
    log-density (the constants do not depend on z and change no gradient).

    **Exact marginal** (``exact_marginal=True``), Gaussian ``p(y) = N(0, I)``: stacking
    ``z = (z_1, ..., z_J)`` in R^{Jd}, ``z = 1_J (x) y + eps`` with ``eps ~ N(0, s^2 I_{Jd})``, so
    ``z`` is Gaussian, zero-mean, with covariance ``Sigma = (s^2 I_J + 1 1^T) (x) I_d``. Per latent
    dimension, Sherman-Morrison gives ``(s^2 I_J + 1 1^T)^{-1} = (I_J - 1 1^T / (s^2 + J)) / s^2``,
    hence the quadratic form::

        z^T Sigma^{-1} z = (1/s^2) [sum_j ||z_j||^2 - ||sum_j z_j||^2 / (s^2 + J)]
                         = (1/s^2) [S + J ||zbar||^2 - J^2 ||zbar||^2 / (s^2 + J)]
                         = S / s^2 + ||zbar||^2 / (1 + s^2 / J),

    using ``sum_j ||z_j||^2 = S + J ||zbar||^2``. With ``det(s^2 I_J + 1 1^T) = s^{2(J-1)} (s^2 + J)``::

        log p(z_1..J) = -S / (2 s^2) - ||zbar||^2 / (2 (1 + s^2/J))
                        - (d/2) [J log 2 pi + (J - 1) log s^2 + log(s^2 + J)],

    exactly ``MultivariateNormal(0, Sigma).log_prob(z)``: the approximation's ``||zbar||^2 / 2``
    becomes ``||zbar||^2 / (2 (1 + s^2/J))`` (``zbar ~ N(0, (1 + s^2/J) I)`` marginally, independent
    of the deviations ``z_j - zbar``). For ``content_prior="uniform"`` the exact marginal of the flat
    prior is ``int prod_j N(z_j; y, s^2 I) dy``: the ``zbar`` term vanishes and the constant is
    ``-(d/2) [(J - 1) log(2 pi s^2) + log J]``.

    Args:
        z: latents ``[J, N, d]`` (J views of N images), usually posterior samples.
        s2: ``s^2 > 0``.
        content_prior: ``"gaussian"`` | ``"uniform"``.
        exact_marginal: integrate ``y`` out exactly instead of evaluating at ``y = zbar``.

    Returns:
        ``[N]`` log prior per image.
    """
    if content_prior not in CONTENT_PRIORS:
        raise ValueError(f"unknown content prior {content_prior!r}; valid priors: {', '.join(CONTENT_PRIORS)}")
    if not s2 > 0:
        raise ValueError(f"prior variance s^2 must be > 0, got {s2}")
    if z.ndim != 3:
        raise ValueError(f"z must be [J, N, d], got shape {list(z.shape)}")
    j, _, d = z.shape
    zbar = z.mean(0)  # [N, d]
    spread = (z - zbar).pow(2).sum((0, 2))  # S, [N]
    log_p = -0.5 * spread / s2
    gaussian = content_prior == "gaussian"
    if exact_marginal:
        if gaussian:
            log_p = log_p - 0.5 * zbar.pow(2).sum(-1) / (1.0 + s2 / j)
            const = -0.5 * d * (j * _LOG_2PI + (j - 1) * math.log(s2) + math.log(s2 + j))
        else:
            const = -0.5 * d * ((j - 1) * (_LOG_2PI + math.log(s2)) + math.log(j))
    else:
        const = -0.5 * j * d * (_LOG_2PI + math.log(s2))
        if gaussian:
            log_p = log_p - 0.5 * zbar.pow(2).sum(-1)
            const -= 0.5 * d * _LOG_2PI
    return log_p + const
