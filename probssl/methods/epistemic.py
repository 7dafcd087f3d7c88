"""An epistemic score that travels with the model: a Gaussian fitted to the training split's backbone features
when training ends, stored as buffers (so checkpoints, ``load_run`` and exports carry it), and a combined
aleatoric + epistemic score.

``method.epistemic: true`` (the default of VSimCLR, VSupCon, SCL and the VAE family) attaches a
:class:`FeatureDensity`. When training finishes,
the trainer calls ``method.on_train_end(images)``: the backbone features of the training images are fitted with
ONE Gaussian (label-free, as befits self-supervised training; Ledoit-Wolf shrinkage), and the training-set mean
and standard deviation of two scores are recorded so they can be put on one scale:

* ``epistemic`` -- squared Mahalanobis distance of the backbone features to the training mean (epistemic: far
  from the training data);
* ``combined`` -- z(aleatoric) + z(epistemic), each z-scored with the TRAINING split's mean and std, where
  the aleatoric score is the method's evidence-chosen posterior score (``Method.aleatoric_kind()``, e.g.
  VSimCLR's ``log_det_cov``).

Both are ``method.uncertainty(images, kind)`` kinds (``extra_uncertainty``); ``combined`` becomes the method's
default score when the config says so (the ``uncertainty-*`` presets).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from probssl.distributions.feature_density import GaussianDensityScore

__all__ = ["FeatureDensity"]


class FeatureDensity(nn.Module):
    """Buffers of a fitted Gaussian on [F]-dim features: whitening factor, mean, and z-scoring statistics."""

    def __init__(self, feature_dim: int):
        super().__init__()
        self.register_buffer("chol", torch.eye(feature_dim, dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(feature_dim, dtype=torch.float64))
        self.register_buffer(
            "stats", torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=torch.float64)
        )  # mu/sd: aleatoric, density
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def fit(self, features: Tensor) -> None:
        """Fit on training features [N, F] (one Gaussian, Ledoit-Wolf shrinkage)."""
        model = GaussianDensityScore().fit(features.double().cpu(), None)
        self.chol.copy_(model._chol)
        self.mean.copy_(model.means[0])
        self.fitted.fill_(True)

    def distance(self, features: Tensor) -> Tensor:
        """Squared Mahalanobis distance to the training mean: [N, F] -> [N] float32."""
        if not bool(self.fitted):
            raise RuntimeError("the feature density has not been fitted yet (it is fitted when training ends)")
        x = features.double() - self.mean.to(features.device)
        z = torch.linalg.solve_triangular(self.chol.to(features.device), x.T, upper=False).T
        return z.pow(2).sum(1).float()

    def set_stats(self, aleatoric: Tensor, density: Tensor) -> None:
        """Training-split scores [N] each: their mean and std put both on one scale in :meth:`combined`."""
        a, d = aleatoric.double(), density.double()
        self.stats.copy_(torch.stack([a.mean(), a.std().clamp_min(1e-12), d.mean(), d.std().clamp_min(1e-12)]).cpu())

    def combined(self, aleatoric: Tensor, density: Tensor) -> Tensor:
        """z(aleatoric) + z(density) with the training statistics: [N], [N] -> [N] float32."""
        s = self.stats.to(aleatoric.device)
        return ((aleatoric.double() - s[0]) / s[1] + (density.double() - s[2]) / s[3]).float()
