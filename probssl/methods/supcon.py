"""SupCon (Khosla et al. 2020, "Supervised Contrastive Learning"), L_out form.

SimCLR's encoder and projection head, but every view of every image of the same class is a
positive: the loss is :func:`probssl.losses.supcon` on all V*N unit-norm projections with the
labels repeated per view. With all labels distinct it is SimCLR's NT-Xent.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from probssl.config import spec
from probssl.losses import supcon
from probssl.methods.labels import require_labels
from probssl.methods.registry import register_method
from probssl.methods.simclr import SimCLR, SimCLRConfig


@dataclass
class SupConConfig(SimCLRConfig):
    temperature: float = spec(0.1, minimum=0.0, exclusive_minimum=True)  # tau (Khosla et al.: 0.1)


@register_method
class SupCon(SimCLR):
    name = "supcon"
    supervised = True
    config_class = SupConConfig

    def __init__(self, backbone: nn.Module, head: nn.Module, temperature: float = 0.1, gather: bool = True):
        super().__init__(backbone, head, temperature=temperature, gather=gather)

    def loss_terms(self, views, labels=None):
        labels = require_labels(self.name, labels)
        z = self.forward_head(self.encode_views(views))  # [V, N, d]
        v, n, d = z.shape
        return {"supcon": supcon(z.reshape(v * n, d), labels.repeat(v), self.temperature, self.gather)}

    def per_sample_loss(self, views, labels=None):
        """[V, N, ...] views + [N] labels -> [N] SupCon loss of each image, averaged over its views as anchors
        (every view has the image's other views as positives, so no anchor is left out)."""
        labels = require_labels(self.name, labels)
        z = self.forward_head(self.encode_views(views))
        v, n, d = z.shape
        per_anchor = supcon(z.reshape(v * n, d), labels.repeat(v), self.temperature, self.gather, reduction="none")
        return per_anchor.reshape(v, n).mean(0)
