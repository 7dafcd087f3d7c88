"""method.epistemic: a Gaussian of the training features fitted when training ends, carried by checkpoints and
exports, and the combined aleatoric + epistemic score."""

import pytest
import torch

from probssl.config import ConfigError, load_config
from probssl.evaluation import evaluate_run
from probssl.train import Trainer, load_run

TINY = [
    "train.epochs=2",
    "train.batch_size=64",
    "data.train_subset=256",
    "train.progress=false",
    "method.epistemic=true",
    "method.uncertainty_score=combined",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run = tmp_path_factory.mktemp("epistemic") / "run"
    Trainer(load_config("vsimclr-digits", overrides=TINY), run).fit()
    return run


def test_fitted_when_training_ends_and_reloaded_from_the_checkpoint(run):
    _, method, _ = load_run(run)
    assert bool(method.feature_density.fitted)
    assert method.uncertainty_kinds()[0] == "combined" and "epistemic" in method.uncertainty_kinds()
    x = torch.rand(5, 1, 8, 8)
    u = method.uncertainty(x)
    assert u.shape == (5,) and torch.isfinite(u).all()
    # combined = z(aleatoric) + z(epistemic): recompute it from its parts
    s = method.feature_density.stats
    aleatoric = method.posterior(x).uncertainty(method.aleatoric_kind()).double()
    epistemic = method.uncertainty(x, "epistemic").double()
    expected = (aleatoric - s[0]) / s[1] + (epistemic - s[2]) / s[3]
    torch.testing.assert_close(u.double(), expected, rtol=1e-5, atol=1e-5)


def test_the_combined_score_is_the_reported_default_and_flags_noise(run):
    m = evaluate_run(run, mode="quick", ood=["noise"], write=False)
    u = m["uncertainty"]
    assert u["primary"] == "combined" and {"epistemic", "combined"} <= set(u["scores_available"])
    assert u["scores"]["epistemic"]["ood"]["noise"]["auroc"] > 0.9


def test_an_unknown_default_score_is_one_clear_error(tmp_path):
    overrides = ["method.uncertainty_score=combined", "method.epistemic=false", "train.progress=false"]
    config = load_config("vsimclr-digits", overrides=overrides)
    with pytest.raises(ConfigError, match="need method.epistemic=true"):
        Trainer(config, tmp_path / "r")


def test_a_heads_default_falls_back_to_the_evidence_chosen_posterior_score_until_fitted(monkeypatch):
    """default_uncertainty may name a head's score; until the head is fitted the default (and always the aleatoric
    part of `combined`) is posterior_uncertainty, not the family's own default."""
    from probssl.methods import create_method
    from probssl.methods.scl import SCL

    monkeypatch.setattr(SCL, "default_uncertainty", "epistemic")
    monkeypatch.setattr(SCL, "posterior_uncertainty", "trace")
    method = create_method(load_config("scl-gaussian-digits", overrides=["method.epistemic=true"]), (1, 8, 8))
    assert method.posterior_class.default_uncertainty == "sigma_mean"  # the family's, which must not be used
    assert method.uncertainty_kinds()[0] == "trace" and method.aleatoric_kind() == "trace"
    method.on_train_end(torch.randint(0, 256, (64, 1, 8, 8), dtype=torch.uint8))
    assert method.uncertainty_kinds()[:1] == ["epistemic"] and method.aleatoric_kind() == "trace"
    x = torch.rand(4, 1, 8, 8)
    torch.testing.assert_close(method.uncertainty(x), method.uncertainty(x, "epistemic"))


def test_the_head_is_fitted_on_all_images_up_to_a_limit_then_on_a_seeded_sample_of_batches():
    from probssl.methods.base import DENSITY_FIT_IMAGES, density_fit_batches

    assert density_fit_batches(1000, 256) == [0, 256, 512, 768]  # all of a small split
    assert len(density_fit_batches(DENSITY_FIT_IMAGES, 512)) == -(-DENSITY_FIT_IMAGES // 512)
    sample = density_fit_batches(1_281_167, 512)  # ImageNet-sized: ~DENSITY_FIT_IMAGES images, in order
    assert len(sample) == -(-DENSITY_FIT_IMAGES // 512) and sample == sorted(set(sample))
    assert all(s % 512 == 0 and s < 1_281_167 for s in sample) and sample == density_fit_batches(1_281_167, 512)
    assert sample[-1] > 640_000  # spread over the split, not its first blocks
    assert density_fit_batches(1000, 100, limit=250) == sorted(density_fit_batches(1000, 100, limit=250))
    assert len(density_fit_batches(1000, 100, limit=250)) == 3


def test_the_epistemic_default_runs_the_backbone_once(run):
    """method.uncertainty(x) with the head's score as default: the same numbers as extra_uncertainty's, from one
    backbone pass (extra_uncertainty also builds `combined`, which needs the posterior's own pass)."""
    _, method, _ = load_run(run)
    method.default_uncertainty = "epistemic"
    calls = []
    handle = method.backbone.register_forward_hook(lambda *_: calls.append(1))
    x = torch.rand(6, 1, 8, 8)
    try:
        u = method.uncertainty(x)
        assert len(calls) == 1
        torch.testing.assert_close(u, method.extra_uncertainty(x)["epistemic"])
    finally:
        handle.remove()


def test_combined_and_the_heads_fit_make_one_backbone_pass_per_image(run):
    """`combined` needs the features (density) and the posterior (aleatoric part): both from one backbone pass, with
    the numbers of the two made apart; fitting the head when training ends also passes each image once."""
    _, method, _ = load_run(run)
    seen = []
    handle = method.backbone.register_forward_hook(lambda _m, inputs, _o: seen.append(len(inputs[0])))
    x = torch.rand(6, 1, 8, 8)
    try:
        method.on_train_end(torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8), batch_size=16)  # a refit
        assert sum(seen) == 40
        seen.clear()
        combined = method.uncertainty(x, "combined")
        assert sum(seen) == 6
    finally:
        handle.remove()
    with torch.no_grad():
        aleatoric = method.posterior(x).uncertainty(method.aleatoric_kind()).float()
        density = method.feature_density.distance(method.forward_features(x))
    torch.testing.assert_close(combined, method.feature_density.combined(aleatoric, density))
