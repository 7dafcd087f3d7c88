"""Loss functions: pure functions of embeddings, with shapes in their docstrings."""
from probssl.losses.contrastive import info_nce, nt_xent, supcon

__all__ = ["info_nce", "nt_xent", "supcon"]
