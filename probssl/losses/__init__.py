"""Loss functions: pure functions of embeddings, with shapes in their docstrings."""
from probssl.losses.contrastive import info_nce, nt_xent, supcon
from probssl.losses.distributed import all_gather_no_grad, all_gather_with_grad, is_distributed, rank_and_world

__all__ = ["all_gather_no_grad", "all_gather_with_grad", "info_nce", "is_distributed", "nt_xent",
           "rank_and_world", "supcon"]
