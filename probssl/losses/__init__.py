"""Loss functions: pure functions of embeddings, with shapes in their docstrings."""

from probssl.losses.contrastive import info_nce, nt_xent, supcon
from probssl.losses.distributed import all_gather_no_grad, all_gather_with_grad, is_distributed, rank_and_world
from probssl.losses.generative import (
    bernoulli_log_likelihood,
    gaussian_entropy,
    gaussian_log_likelihood,
    kl_diagonal_normals,
    simvae_group_prior,
)
from probssl.losses.mcinfonce import MC_INFONCE_ESTIMATORS, mc_infonce, mc_infonce_from_samples
from probssl.losses.vicreg import vicreg_loss

__all__ = [
    "all_gather_no_grad",
    "all_gather_with_grad",
    "bernoulli_log_likelihood",
    "gaussian_entropy",
    "gaussian_log_likelihood",
    "info_nce",
    "is_distributed",
    "kl_diagonal_normals",
    "MC_INFONCE_ESTIMATORS",
    "mc_infonce",
    "mc_infonce_from_samples",
    "nt_xent",
    "rank_and_world",
    "simvae_group_prior",
    "supcon",
    "vicreg_loss",
]
