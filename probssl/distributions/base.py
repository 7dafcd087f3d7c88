"""The posterior contract: what training and evaluation may rely on in a posterior q(z|x).

Every posterior family in probssl subclasses :class:`Posterior` (itself a
``torch.distributions.Distribution``) and provides, with ``batch_shape`` [B] and ``event_shape`` (d,):

* ``rsample(sample_shape)`` / ``sample(sample_shape)``: draws of shape sample_shape + [B, d];
* ``log_prob(z)`` -> [B] and ``entropy()`` -> [B] where the family has them (a point mass has
  neither and raises ``NotImplementedError``);
* ``mean_direction`` -> [B, d]: a DETERMINISTIC summary used as the evaluated "mean"
  representation (the mean for Gaussians, m/‖m‖ for sphere families, the probabilities for bits).
  Properties never draw random numbers; Monte-Carlo estimates are methods with an explicit sample
  count (e.g. :meth:`mc_mean`);
* named uncertainty scores, higher = more uncertain, each [B]: ``uncertainty(kind)`` dispatches to a
  method marked with :func:`uncertainty_score`, ``uncertainty_kinds()`` lists them (the family's
  ``default_uncertainty`` first) and ``uncertainty_descriptions()`` says what each measures.

A new family is one subclass: mark its scores with ``@uncertainty_score("what it measures")`` and
set ``default_uncertainty``; evaluation then finds and reports every score with no other change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch.distributions import Distribution

__all__ = ["DiagonalScaleScores", "Posterior", "uncertainty_score"]


def uncertainty_score(description: str) -> Callable:
    """Mark a zero-argument method ``name(self) -> Tensor [B]`` as the uncertainty score ``name``."""

    def mark(fn: Callable) -> Callable:
        fn.uncertainty_description = description
        return fn

    return mark


class Posterior(Distribution):
    """Base class of probssl's posterior families (see the module docstring for the contract)."""

    #: The score ``uncertainty()`` returns when no kind is given.
    default_uncertainty: ClassVar[str] = ""
    #: name -> description of every score of the family (filled in by ``__init_subclass__``).
    _scores: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        scores: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            for name, attr in vars(klass).items():
                description = getattr(attr, "uncertainty_description", None)
                if description is not None:
                    scores[name] = description
        if cls.default_uncertainty and cls.default_uncertainty not in scores:
            raise TypeError(f"{cls.__name__}.default_uncertainty={cls.default_uncertainty!r} is not one of its scores")
        cls._scores = scores

    @classmethod
    def uncertainty_kinds(cls) -> list[str]:
        """Names of the family's uncertainty scores, the default first."""
        rest = sorted(k for k in cls._scores if k != cls.default_uncertainty)
        return ([cls.default_uncertainty] if cls.default_uncertainty else []) + rest

    @classmethod
    def uncertainty_descriptions(cls) -> dict[str, str]:
        return {k: cls._scores[k] for k in cls.uncertainty_kinds()}

    def uncertainty(self, kind: str | None = None) -> torch.Tensor:
        """The uncertainty score ``kind`` (default: the family's ``default_uncertainty``), shape [B]."""
        kind = kind or self.default_uncertainty
        if kind not in self._scores:
            raise ValueError(
                f"{type(self).__name__} has no uncertainty score {kind!r}; its scores: {', '.join(self.uncertainty_kinds())}"
            )
        return getattr(self, kind)()

    @property
    def mean_direction(self) -> torch.Tensor:
        """Deterministic [B, d] summary of q (the evaluated "mean" representation)."""
        return self.mean

    def mc_mean(self, num_samples: int = 256, chunk: int = 64) -> torch.Tensor:
        """Monte-Carlo estimate of E[z] from ``num_samples`` draws (in chunks to bound memory), [B, d]."""
        acc, done = None, 0
        while done < num_samples:
            n = min(chunk, num_samples - done)
            part = self.rsample((n,)).sum(0)
            acc = part if acc is None else acc + part
            done += n
        return acc / num_samples


class DiagonalScaleScores:
    """Scores of families parameterised by per-dimension scales σ [B, d] (mixed into a Posterior)."""

    scale: torch.Tensor

    @uncertainty_score(
        "log det of the diagonal covariance, sum_i log sigma_i^2 (VCL's score, log det K; of the underlying "
        "Gaussian for sphere families)"
    )
    def log_det_cov(self) -> torch.Tensor:
        return 2.0 * torch.log(self.scale).sum(-1)

    @uncertainty_score("mean of the scale parameters sigma_i; ignores the location")
    def sigma_mean(self) -> torch.Tensor:
        return self.scale.mean(-1)

    @uncertainty_score("trace of the diagonal covariance, sum_i sigma_i^2")
    def trace(self) -> torch.Tensor:
        return self.scale.pow(2).sum(-1)
