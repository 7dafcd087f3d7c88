"""A new method with a new hyper-parameter, added from this one file without editing probssl/."""

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

from probssl.config import ConfigError, MethodConfig, load_config, spec
from probssl.distributions import PointMass
from probssl.losses import info_nce
from probssl.methods import Method, register_method
from probssl.models import ProjectionHead
from probssl.train import Trainer, load_run

TINY = ["train.epochs=1", "train.batch_size=64", "data.train_subset=256", "train.progress=false"]


@dataclass
class MarginCLRConfig(MethodConfig):
    temperature: float = spec(0.5, minimum=0.0, exclusive_minimum=True)
    margin: float = spec(0.0, minimum=0.0, maximum=1.0)  # the new hyper-parameter

    def check(self) -> list[str]:
        return [] if self.margin < 0.9 else [f"method.margin={self.margin} leaves no room for the positives"]


@register_method
class MarginCLR(Method):
    """NT-Xent with the positive logit reduced by ``margin`` (an additive-margin contrastive loss)."""

    name = "test-margin-clr"
    config_class = MarginCLRConfig

    def __init__(self, backbone, head, temperature, margin):
        super().__init__(backbone)
        self.head, self.temperature, self.margin = head, temperature, margin

    @classmethod
    def from_config(cls, backbone, config, image_shape):
        head = ProjectionHead(backbone.feature_dim, 64, config.model.embed_dim)
        return cls(backbone, head, config.method.temperature, config.method.margin)

    def forward_head(self, features):
        return F.normalize(self.head(features.reshape(-1, features.shape[-1])), dim=-1).reshape(
            *features.shape[:-1], -1
        )

    def loss_terms(self, views, labels=None):
        z = self.forward_head(self.encode_views(views))
        # the margin shrinks the positive pair's similarity: subtracting it from the second view's embedding
        # along the first view's direction is the same as lowering their cosine by `margin`
        shifted = torch.stack([z[0], z[1] - self.margin * z[0]])
        return {"nt_xent": info_nce(shifted, self.temperature, gather=False)}

    def posterior(self, images):
        return PointMass(self.forward_head(self.forward_features(images)))


def test_the_new_method_trains_resumes_and_reloads(tmp_path):
    config = load_config("simclr-digits", overrides=[*TINY, "method.name=test-margin-clr", "method.margin=0.3"])
    assert type(config.method) is MarginCLRConfig and config.method.margin == 0.3
    assert config.method.temperature == 0.2  # the preset's value carries over to the new method's schema
    method = Trainer(config, tmp_path / "run").fit()
    assert method.margin == 0.3
    config2, reloaded, state = load_run(tmp_path / "run")
    assert config2.method.margin == 0.3 and state.step == 4
    x = torch.rand(3, 1, 8, 8)
    torch.testing.assert_close(reloaded.represent(x), method.cpu().represent(x))


def test_its_keys_are_checked_by_its_own_schema():
    with pytest.raises(ConfigError, match="of method 'test-margin-clr'.*Did you mean 'margin'.*temperature, margin"):
        load_config(overrides=["method.name=test-margin-clr", "method.margn=0.2"])
    with pytest.raises(ConfigError, match="method.margin must be <= 1.0"):
        load_config(overrides=["method.name=test-margin-clr", "method.margin=2"])
    with pytest.raises(ConfigError, match="leaves no room"):  # the method's own check
        load_config(overrides=["method.name=test-margin-clr", "method.margin=0.95"])
    with pytest.raises(ConfigError, match="Unknown config key 'method.margin' of method 'simclr'"):
        load_config(overrides=["method.margin=0.2"])


def test_a_method_that_overrides_posterior_itself_still_gets_every_score(tmp_path):
    """MarginCLR defines posterior(images), not posterior_from_features: the one-pass paths fall back to two."""
    config = load_config("simclr-digits", overrides=[*TINY, "method.name=test-margin-clr", "method.epistemic=true"])
    method = Trainer(config, tmp_path / "run").fit().eval()
    assert not MarginCLR.posterior_factors()
    x = torch.rand(5, 1, 8, 8)
    features, q = method.features_and_posterior(x)
    torch.testing.assert_close(features, method.forward_features(x))
    torch.testing.assert_close(q.mean_direction, method.posterior(x).mean_direction)
    torch.testing.assert_close(method.extra_uncertainty_from(features)["epistemic"], method.uncertainty(x, "epistemic"))
