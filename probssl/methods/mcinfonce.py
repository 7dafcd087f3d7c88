"""MCInfoNCE (Kirchhof, Kasneci, Oh, ICML 2023, "Probabilistic Contrastive Learning Recovers the
Correct Aleatoric Uncertainty of Ambiguous Inputs").

The backbone is followed by a :class:`~probssl.models.SphericalHead`: each view becomes a posterior
q(z|x) on S^{d-1} with a unit mean direction and a concentration kappa(x) (``method.posterior_family``:
``vmf``, the paper's, or ``power-spherical``). The loss is :func:`probssl.losses.mc_infonce`: minus the log
of the Monte-Carlo mean (``method.num_samples`` joint draws of every posterior) of the InfoNCE
likelihood of the positive, with logits z.z'/tau (the paper's kappa_pos = 1/tau, ``method.temperature``;
``method.learn_temperature`` makes it a trained parameter, as the official code's ``l_learnable_params``).
The expectation inside the log is what makes kappa(x) match the ambiguity of x.

There is NO regulariser: the paper's objective is MCInfoNCE alone (no KL to a prior; the official code's
``smoothness_loss`` belongs to its synthetic data generator, not to the encoder's loss). Without a KL term
nothing pulls kappa down except the loss itself.

Defaults and where they come from (official repository github.com/mkirchhof/Probabilistic_Contrastive_Learning):
``num_samples`` = 128 (``--l_n_samples`` default and the CIFAR scripts), ``temperature`` = 1/16 (the README:
"16 [is] a solid starting value" for ``kappa_init`` = kappa_pos), ``learn_temperature`` = false (the
``--l_learnable_params`` default), ``posterior_family`` = vmf (the paper's). Deviations, all deliberate:
the negatives/anchors of :func:`probssl.losses.mc_infonce` (SimCLR's symmetric 2N-anchor set, sum over
negatives; see its docstring); kappa(x) from a separate output of the projection head
(:class:`~probssl.models.SphericalHead`, initial kappa ~ d, ``method.init_kappa``) rather than the official
ResNet encoder's embedding norm or its rescaled MLP; a learned temperature is parameterised by log kappa_pos
(kept positive; the official code learns kappa_pos itself).

Representation: the backbone features (as for SimCLR); uncertainty: the family's default score,
``expected_cosine_distance`` = 1 - E[cos(z, mu)], a monotone function of 1/kappa.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from probssl.config import spec
from probssl.distributions import PowerSpherical, VonMisesFisher
from probssl.losses import mc_infonce
from probssl.losses.mcinfonce import _positive_log_probs
from probssl.methods.base import Method
from probssl.methods.registry import register_method
from probssl.methods.simclr import SimCLRConfig
from probssl.models import SphericalHead

FAMILIES = {"vmf": VonMisesFisher, "power-spherical": PowerSpherical}


@dataclass
class MCInfoNCEConfig(SimCLRConfig):
    temperature: float = spec(1 / 16, minimum=0.0, exclusive_minimum=True)  # tau = 1/kappa_pos (README: 16)
    learn_temperature: bool = False  # train kappa_pos too (official --l_learnable_params, default false)
    num_samples: int = spec(128, minimum=1)  # MC draws per posterior (official --l_n_samples default)
    posterior_family: str = spec("vmf", choices=tuple(FAMILIES))  # q(z|x); the paper's: vmf
    init_kappa: float | None = spec(None, minimum=0.0, exclusive_minimum=True)  # initial kappa(x); None: d

    def check(self) -> list[str]:
        if self.init_kappa is not None and self.init_kappa <= 1e-2:
            return [f"method.init_kappa must exceed the head's kappa floor 0.01, got {self.init_kappa}"]
        return []


@register_method
class MCInfoNCE(Method):
    name = "mcinfonce"
    probabilistic = True
    posterior_class = VonMisesFisher  # PowerSpherical for posterior_family=power-spherical (set per instance)
    config_class = MCInfoNCEConfig

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        temperature: float = 1 / 16,
        num_samples: int = 128,
        learn_temperature: bool = False,
        posterior_family: str = "vmf",
        gather: bool = True,
    ):
        super().__init__(backbone)
        if posterior_family not in FAMILIES:
            raise ValueError(f"Unknown posterior_family {posterior_family!r}; choose from {', '.join(FAMILIES)}")
        if not temperature > 0 or num_samples < 1:
            raise ValueError(f"need temperature > 0 and num_samples >= 1, got {temperature}, {num_samples}")
        self.head = head
        self.num_samples = int(num_samples)
        self.gather = gather
        self.posterior_family = posterior_family
        self.posterior_class = FAMILIES[posterior_family]
        log_kappa_pos = torch.tensor(math.log(1.0 / temperature))
        if learn_temperature:  # log-parameterised so that the learned tau stays positive
            self.log_kappa_pos = nn.Parameter(log_kappa_pos)
        else:
            self.register_buffer("log_kappa_pos", log_kappa_pos)

    @classmethod
    def from_config(cls, backbone, config, image_shape):
        m, c = config.model, config.method
        head = SphericalHead(
            backbone.feature_dim, m.head_hidden_dim, m.embed_dim, num_layers=m.head_layers, init_kappa=c.init_kappa
        )
        return cls(
            backbone,
            head,
            temperature=c.temperature,
            num_samples=c.num_samples,
            learn_temperature=c.learn_temperature,
            posterior_family=c.posterior_family,
            gather=c.gather_distributed,
        )

    @property
    def temperature(self) -> Tensor:
        """tau = 1/kappa_pos, a scalar tensor (differentiable when learn_temperature)."""
        return torch.exp(-self.log_kappa_pos)

    def forward_head(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """[..., F] -> (direction [..., d] unit-norm, kappa [...] > 0)."""
        shape = features.shape
        direction, kappa = self.head(features.reshape(-1, shape[-1]))
        return direction.reshape(*shape[:-1], -1), kappa.reshape(shape[:-1])

    def view_posteriors(self, views: Tensor):
        """[V, N, C, H, W] -> q(z|x) of every view, batch_shape [V, N] (float32)."""
        direction, kappa = self.forward_head(self.encode_views(views))
        return self.posterior_class(direction.float(), kappa.float())

    def loss_terms(self, views, labels=None):
        q = self.view_posteriors(views)
        return {"mc_infonce": mc_infonce(q, self.num_samples, self.temperature, self.gather)}

    def per_sample_loss(self, views, labels=None):
        """[V, N, ...] views -> [N]: each image's MCInfoNCE (log-mean-exp over draws per (anchor, positive)
        pair, averaged over its views as anchors and their positives); its mean is the loss."""
        v, n = views.shape[:2]
        samples = self.view_posteriors(views).rsample((self.num_samples,))  # [S, V, N, d]
        log_p = _positive_log_probs(samples, self.temperature, self.gather)  # [S, V*N, V-1]
        per_pair = math.log(self.num_samples) - torch.logsumexp(log_p, dim=0)  # [V*N, V-1]
        return per_pair.reshape(v, n, v - 1).mean(dim=(0, 2))

    def posterior_from_features(self, features):
        direction, kappa = self.forward_head(features)
        return self.posterior_class(direction, kappa)
