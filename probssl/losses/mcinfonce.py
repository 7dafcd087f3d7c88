"""MCInfoNCE: InfoNCE for probabilistic embeddings (Kirchhof, Kasneci & Oh, ICML 2023).

Each image's views are encoded as posteriors q(z|x) on the sphere (vMF in the paper). MCInfoNCE is
the negative log of the *expected* InfoNCE likelihood of the positive,

    L = E_x [ -log E_{z ~ q(·|x), z⁺ ~ q(·|x⁺), z⁻_m ~ q(·|x⁻_m)} exp(z·z⁺/τ) / (exp(z·z⁺/τ) + Σ_m exp(z·z⁻_m/τ)) ],

estimated with S joint Monte-Carlo draws (one sample of every posterior per draw):

    L̂ = -mean_anchors log( 1/S Σ_s p_s ),   p_s = the softmax probability of the positive in draw s,

i.e. a log-mean-exp over draws of the per-draw log-likelihoods (estimator ``"log_mean_exp"``). The
expectation sits inside the log; this is what lets the posteriors' spread match the ambiguity of the
input (the paper's identifiability result). The alternative ``"mean"`` (mean over draws of the
per-draw InfoNCE loss, the expectation outside the log) is provided for comparison only.

Negatives and positives follow :func:`probssl.losses.info_nce` exactly: for V = 2 each of the 2N
anchors has its other view as the positive and the 2N - 2 other embeddings (both views, all images,
all ranks under ``gather``) as negatives; for V > 2 each (anchor, positive) pair contributes
equally (SupCon's L_out form). So with identical draws (S = 1 with the means, or κ → ∞) the loss
equals ``info_nce`` of those embeddings.

Deviations from the paper/official code, all deliberate: the paper writes the logit as κ_pos·z·z⁺
with a learnable κ_pos; here it is 1/τ with ``temperature`` = τ (pass a tensor to learn it). The
official code uses one anchor direction (reference → positive) and the logsumexp *mean* over
negatives (subtracting log M); we use the symmetric SimCLR/NT-Xent set of anchors and the sum over
negatives so that the deterministic limit is exactly ``info_nce``. The log-mean-exp over draws is
the same as in the paper and the official code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.distributions import Distribution

from probssl.losses.distributed import all_gather_with_grad, rank_and_world

__all__ = ["MC_INFONCE_ESTIMATORS", "mc_infonce", "mc_infonce_from_samples"]

#: Valid ``estimator`` names: the paper's (expectation inside the log) and the naive mean of losses.
MC_INFONCE_ESTIMATORS = ("log_mean_exp", "mean")


def _positive_log_probs(samples: Tensor, temperature, gather: bool) -> Tensor:
    """[S, V, N, d] -> [S, V*N, V-1]: per draw, log softmax probability of every (anchor, positive) pair."""
    s, v, n, d = samples.shape
    rank, world = rank_and_world() if gather else (0, 1)
    if world > 1:
        # gather along the image axis; the backward sums every rank's gradient of this rank's slice
        gathered = all_gather_with_grad(samples.permute(2, 0, 1, 3).contiguous())  # [W*N, S, V, d]
        candidates = gathered.permute(1, 2, 0, 3)  # [S, V, W*N, d]
    else:
        candidates = samples
    n_all = candidates.shape[2]
    anchors = samples.reshape(s, v * n, d)
    candidates = candidates.reshape(s, v * n_all, d)
    logits = anchors @ candidates.transpose(1, 2) / temperature  # [S, V*N, V*W*N]
    local = torch.arange(n, device=samples.device) + rank * n
    view = torch.arange(v, device=samples.device)
    self_index = (view[:, None] * n_all + local[None, :]).reshape(-1)  # [V*N], view-major like anchors
    logits = logits.scatter(2, self_index[None, :, None].expand(s, -1, 1), float("-inf"))
    log_prob = torch.log_softmax(logits, dim=-1)
    # positives of anchor (view a, image i): (view b, image i) for every b != a
    others = torch.stack([torch.cat([view[:a], view[a + 1 :]]) for a in range(v)])  # [V, V-1]
    pos_index = others[:, None, :] * n_all + local[None, :, None]  # [V, N, V-1]
    pos_index = pos_index.reshape(1, v * n, v - 1).expand(s, -1, -1)
    return log_prob.gather(2, pos_index)


def mc_infonce_from_samples(
    samples: Tensor, temperature=0.5, gather: bool = True, estimator: str = "log_mean_exp"
) -> Tensor:
    """MCInfoNCE from posterior draws.

    Args:
        samples: [S, V, N, d] unit-norm draws; samples[s, :, i] are draw s of the V views of image i
            (one joint draw of every posterior per s). V ≥ 2.
        temperature: τ > 0 (float or scalar tensor; the paper's κ_pos = 1/τ).
        gather: under torch.distributed, use all ranks' draws as negatives (as ``info_nce``).
        estimator: ``"log_mean_exp"`` (the paper: -log of the MC mean of the likelihoods) or
            ``"mean"`` (mean over draws of the per-draw InfoNCE loss).
    Returns:
        scalar loss (mean over the local V·N anchors and their V-1 positives).
    """
    if estimator not in MC_INFONCE_ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; valid: {', '.join(MC_INFONCE_ESTIMATORS)}")
    if samples.dim() != 4 or samples.shape[1] < 2:
        raise ValueError(f"samples must have shape [S, V, N, d] with V >= 2, got {tuple(samples.shape)}")
    if samples.dtype in (torch.float16, torch.bfloat16):
        samples = samples.float()  # logits / tau overflow half precision
    log_p = _positive_log_probs(samples, temperature, gather)  # [S, V*N, V-1]
    if estimator == "mean":
        return -log_p.mean()
    # log (1/S Σ_s p_s), stable for log p_s ≪ 0
    log_mean = torch.logsumexp(log_p, dim=0) - math.log(samples.shape[0])
    return -log_mean.mean()


def mc_infonce(
    posteriors: Distribution | Sequence[Distribution],
    num_samples: int = 16,
    temperature=0.5,
    gather: bool = True,
    estimator: str = "log_mean_exp",
) -> Tensor:
    """MCInfoNCE of posteriors over the views of a batch (see the module docstring).

    Args:
        posteriors: either one distribution with batch_shape [V, N] and event_shape (d,) (e.g.
            ``VonMisesFisher(loc [V, N, d], kappa [V, N])``), or a sequence of V distributions with
            batch_shape [N] (one per view). Must support ``rsample`` (reparameterised) for training.
        num_samples: S, the Monte-Carlo draws per posterior.
        temperature, gather, estimator: as :func:`mc_infonce_from_samples`.
    Returns:
        scalar loss, differentiable w.r.t. the posteriors' parameters through ``rsample``.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    shape = torch.Size((num_samples,))
    if isinstance(posteriors, Distribution):
        if len(posteriors.batch_shape) != 2:
            raise ValueError(f"expected batch_shape [V, N], got {tuple(posteriors.batch_shape)}")
        samples = posteriors.rsample(shape)  # [S, V, N, d]
    else:
        samples = torch.stack([q.rsample(shape) for q in posteriors], dim=1)  # [S, V, N, d]
    return mc_infonce_from_samples(samples, temperature, gather, estimator)
