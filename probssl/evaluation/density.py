"""The Gaussian density score lives in :mod:`probssl.distributions.feature_density` (methods use it too, to carry
an epistemic score in a checkpoint); re-exported here for evaluation."""

from probssl.distributions.feature_density import GaussianDensityScore

__all__ = ["GaussianDensityScore"]
