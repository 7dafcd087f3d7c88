"""The method interface that every SSL method follows.

A method answers two questions and nothing else:
  * how does a batch of augmented views (and labels, when supervised) become named loss terms?
  * how does an image become a posterior over its embedding?
Loops, devices, checkpoints and logging live once, in :mod:`probssl.train`.

One vocabulary across methods (as timm's ``forward_features`` / ``forward_head``):
  * ``forward_features(images [N, C, H, W]) -> [N, F]``: the backbone;
  * ``forward_head(features [..., F]) -> ...``: whatever the method's head makes of them (unit-norm
    projections, ``(loc, scale)`` of a posterior, a latent posterior, ...; each method documents it);
  * ``posterior(images) -> Posterior``: q(z|x) (see :mod:`probssl.distributions.base` for the contract);
  * ``represent(images, kind)``: the representation evaluated downstream.

Each method owns its hyper-parameters: a :class:`~probssl.config.MethodConfig` subclass set as
``config_class``, registered with the method, whose ``check()`` holds the method's own value checks.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from probssl.config import MethodConfig
from probssl.distributions import PointMass, Posterior, StraightThroughBernoulli

REPRESENTATIONS = ("backbone", "mean", "direction", "sample", "bits")


class Method(nn.Module):
    """Base class: a backbone plus whatever head and loss the method adds.

    Subclasses implement :meth:`loss_terms` and :meth:`posterior`. ``forward`` is ``loss_terms``
    so that wrappers such as DistributedDataParallel see the whole computation.
    """

    name: ClassVar[str] = ""
    supervised: ClassVar[bool] = False  # loss_terms needs labels
    probabilistic: ClassVar[bool] = False  # posterior is not a point mass
    default_representation: ClassVar[str] = "backbone"
    #: The method's hyper-parameters (``config.method`` is an instance of it).
    config_class: ClassVar[type[MethodConfig]] = MethodConfig
    #: The family ``posterior()`` returns (an instance may set its own, as SCL does per latent).
    posterior_class: ClassVar[type[Posterior]] = PointMass
    #: The posterior score reported as "the" uncertainty; None: the posterior family's default.
    default_uncertainty: ClassVar[str | None] = None

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    @classmethod
    def from_config(cls, backbone: nn.Module, config, image_shape: tuple[int, int, int]) -> Method:
        """Build the method from a :class:`probssl.config.Config` around ``backbone``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the two questions
    def loss_terms(self, views: Tensor, labels: Tensor | None = None) -> dict[str, Tensor]:
        """[V, N, C, H, W] float views (+ [N] labels) -> named scalar loss terms.

        Each term is already weighted; the training loss is their sum.
        """
        raise NotImplementedError

    def posterior(self, images: Tensor) -> Posterior:
        """[N, C, H, W] float images -> q(z|x) with batch_shape [N] and event_shape [d]."""
        raise NotImplementedError

    # ------------------------------------------------------------------ shared helpers
    def forward(self, views: Tensor, labels: Tensor | None = None) -> dict[str, Tensor]:
        return self.loss_terms(views, labels)

    def forward_features(self, images: Tensor) -> Tensor:
        """[N, C, H, W] -> backbone features [N, F]."""
        return self.backbone(images)

    def forward_head(self, features: Tensor):
        """[..., F] backbone features -> the head's output (each method documents what it is)."""
        raise NotImplementedError

    def encode_views(self, views: Tensor) -> Tensor:
        """[V, N, C, H, W] -> backbone features [V, N, F] in one backbone call."""
        v, n = views.shape[:2]
        feats = self.forward_features(views.reshape(v * n, *views.shape[2:]))
        return feats.reshape(v, n, -1)

    def on_step(self, step: int, total_steps: int) -> None:
        """Called by the trainer before each step (e.g. to anneal a temperature)."""

    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        """Called by the trainer after each optimiser step (e.g. to update a momentum encoder)."""

    def uncertainty(self, images: Tensor, kind: str | None = None) -> Tensor:
        """[N, C, H, W] -> the posterior's score ``kind`` (default: the method's ``default_uncertainty``,
        else the family's), [N]."""
        return self.posterior(images).uncertainty(kind or self.default_uncertainty)

    def uncertainty_kinds(self) -> list[str]:
        """Scores the posterior of this method offers (the method's default first)."""
        kinds = self.posterior_class.uncertainty_kinds()
        default = self.default_uncertainty
        return [default, *(k for k in kinds if k != default)] if default in kinds else kinds

    @torch.no_grad()
    def represent(self, images: Tensor, kind: str = "auto") -> Tensor:
        """[N, C, H, W] -> the representation evaluated downstream, [N, D].

        kind: backbone | mean | direction | sample | bits ('auto' = the method's default).
        'mean' is deterministic: the mean direction for sphere posteriors (whose exact mean has no
        closed form), the mean otherwise; 'direction' is it normalised to unit length.
        """
        kind = self.default_representation if kind == "auto" else kind
        if kind == "backbone":
            return self.forward_features(images)
        q = self.posterior(images)
        mean = q.mean_direction
        if kind == "mean":
            return mean
        if kind == "direction":
            return F.normalize(mean, dim=-1)
        if kind == "sample":
            return q.sample()
        if kind == "bits":
            if not isinstance(q, StraightThroughBernoulli):
                raise ValueError(
                    f"representation 'bits' needs a Bernoulli posterior; {self.name} has {type(q).__name__}"
                )
            return (q.probs > 0.5).to(images.dtype)
        raise ValueError(f"Unknown representation '{kind}'; choose from auto, {', '.join(REPRESENTATIONS)}")
