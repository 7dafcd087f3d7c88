"""VSupCon (Jeong, Kim, Hero 2025, "Variational Contrastive Learning"), the supervised VCL.

VSimCLR with SupCon in place of InfoNCE: the projected-normal posterior, its reparameterised
samples and beta times the (normalised) KL to the uniform sphere are VSimCLR's, with the same
options; the contrastive term is SupCon (L_out) on the samples of all views, labels repeated.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from probssl.config import spec
from probssl.losses import supcon
from probssl.methods.labels import require_labels
from probssl.methods.registry import register_method
from probssl.methods.vsimclr import VSimCLR, VSimCLRConfig


@dataclass
class VSupConConfig(VSimCLRConfig):
    temperature: float = spec(0.1, minimum=0.0, exclusive_minimum=True)


@register_method
class VSupCon(VSimCLR):
    name = "vsupcon"
    supervised = True
    config_class = VSupConConfig

    def loss_terms(self, views, labels=None):
        require_labels(self.name, labels)
        terms = super().loss_terms(views, labels)
        return {"supcon": terms.pop("nt_xent"), **terms}  # VSimCLR names its contrastive term nt_xent

    def contrastive(self, z: Tensor, labels: Tensor | None) -> Tensor:
        v, n, d = z.shape
        return supcon(z.reshape(v * n, d), labels.repeat(v), self.temperature, self.gather)
