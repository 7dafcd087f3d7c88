"""VSupCon (Jeong, Kim, Hero 2025, "Variational Contrastive Learning"), the supervised VCL.

VSimCLR with SupCon in place of InfoNCE: the posterior (``method.posterior_family``: projected normal,
Power Spherical or vMF), its reparameterised samples and beta times the (normalised) KL to the uniform
sphere are VSimCLR's, with the same options; the contrastive term is SupCon (L_out) on the samples of
all views, labels repeated.
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

    def per_sample_loss(self, views, labels=None):
        require_labels(self.name, labels)
        return super().per_sample_loss(views, labels)

    def contrastive(self, z: Tensor, labels: Tensor | None, reduction: str = "mean") -> Tensor:
        """[V, N, d] samples -> SupCon on all V*N of them: scalar ("mean") or [V, N] per anchor ("none")."""
        v, n, d = z.shape
        out = supcon(z.reshape(v * n, d), labels.repeat(v), self.temperature, self.gather, reduction)
        return out if reduction == "mean" else out.reshape(v, n)
