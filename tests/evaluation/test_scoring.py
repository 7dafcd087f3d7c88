"""The Scorer makes every per-image score from one network pass per batch (two when evaluation runs in bf16 and the
scores in float32: score_precision="fp32"), with the numbers the per-score public API gives: each score checked
against an oracle that asks the method once per score, as evaluation did before the passes were shared."""

import dataclasses
import re

import pytest
import torch

from probssl.config import load_config
from probssl.data import to_float_images
from probssl.evaluation import EvalOptions, extract
from probssl.evaluation.scoring import Scorer, dispersion
from probssl.evaluation.uncertainty import knn_distance_score
from probssl.methods import create_method
from probssl.train import autocast

SHAPE = (1, 8, 8)


def _fitted(preset: str):
    torch.manual_seed(0)
    method = create_method(load_config(preset, overrides=["method.epistemic=true"]), SHAPE).eval()
    method.on_train_end(torch.randint(0, 256, (96, *SHAPE), dtype=torch.uint8))
    return method


def _scorer(method, precision: str, score_precision: str = "fp32") -> tuple[Scorer, EvalOptions]:
    opts = EvalOptions(batch_size=16, mc_samples=4, precision=precision, score_precision=score_precision)
    g = torch.Generator().manual_seed(1)
    train = torch.randint(0, 256, (40, *SHAPE), dtype=torch.uint8, generator=g)
    train_x = extract(method, train, "auto", opts.batch_size, "cpu", precision)
    backbone = extract(method, train, "backbone", opts.batch_size, "cpu", precision)
    labels = torch.arange(40) % 4
    return Scorer(method, "auto", train_x, opts, "cpu", train_backbone=backbone, train_labels=labels), opts


def _with_backbone_images(method, fn):
    """(fn(), how many images the backbone saw while it ran)."""
    seen = []
    handle = method.backbone.register_forward_hook(lambda _m, inputs, _o: seen.append(len(inputs[0])))
    try:
        return fn(), sum(seen)
    finally:
        handle.remove()


def _oracle(method, scorer: Scorer, opts: EvalOptions, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every score asked of the method on its own: the posterior's and the extra scores in float32, the kNN and
    density features under the evaluation precision."""
    x = to_float_images(images)
    out = {}
    with torch.no_grad():
        if method.probabilistic:
            q = method.posterior(x)
            out = {k: q.uncertainty(k).float() for k in method.posterior_class.uncertainty_kinds()}
            step, chunks = max(1, opts.batch_size // 4), []
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(opts.seed)
                for i in range(0, len(x), step):
                    chunks.append(dispersion(method.posterior(x[i : i + step]), opts.mc_samples))
            out["mc_dispersion"] = torch.cat(chunks)
        out.update({k: v.float() for k, v in method.extra_uncertainty(x).items()})
    feats = extract(method, images, "auto", opts.batch_size, "cpu", opts.precision)
    out["knn_distance"] = knn_distance_score(scorer.train_x, feats, k=opts.knn_score_k)
    backbone = extract(method, images, "backbone", opts.batch_size, "cpu", opts.precision)
    out["density"] = scorer.density.score(backbone).float()
    return out


@pytest.mark.parametrize("preset", ["vsimclr-digits", "scl-bernoulli-digits", "simvae-digits", "simclr-digits"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_every_score_equals_the_per_score_api_from_one_pass(preset, precision):
    method = _fitted(preset)
    scorer, opts = _scorer(method, precision)
    images = torch.randint(0, 256, (24, *SHAPE), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    scores, seen = _with_backbone_images(method, lambda: scorer.all(images))
    # float32: one pass makes everything; bf16: the kNN / density features come from one more, under autocast
    assert seen == len(images) * (1 if precision == "fp32" else 2)
    oracle = _oracle(method, scorer, opts, images)
    assert set(scores) == set(oracle) and set(scores) == set(scorer.names), (sorted(scores), sorted(oracle))
    for name, value in oracle.items():
        assert scores[name].shape == (len(images),), name
        torch.testing.assert_close(scores[name], value, rtol=1e-4, atol=1e-5, msg=name)


def test_given_features_are_used_for_the_knn_score():
    method = _fitted("vsimclr-digits")
    scorer, opts = _scorer(method, "fp32")
    images = torch.randint(0, 256, (8, *SHAPE), dtype=torch.uint8)
    given = scorer.train_x[:8]
    scores = scorer.all(images, feats=given)
    torch.testing.assert_close(scores["knn_distance"], knn_distance_score(scorer.train_x, given, k=opts.knn_score_k))


def test_a_sampled_representation_is_drawn_apart_from_the_seeded_posterior_draws():
    """kind='sample' draws from the global generator, so it gets its own pass and cannot shift mc_dispersion's
    seeded draws."""
    method = _fitted("vsimclr-digits")
    opts = EvalOptions(batch_size=16, mc_samples=4)
    train = torch.randint(0, 256, (40, *SHAPE), dtype=torch.uint8)
    scorer = Scorer(method, "sample", extract(method, train, "sample", 16, "cpu"), opts, "cpu")
    images = torch.randint(0, 256, (12, *SHAPE), dtype=torch.uint8)
    first, second = scorer.all(images), scorer.all(images)
    torch.testing.assert_close(first["mc_dispersion"], second["mc_dispersion"])
    assert not torch.equal(first["knn_distance"], second["knn_distance"])  # fresh draws each call


def test_given_backbone_features_serve_the_density_too_without_a_pass():
    """A deterministic method without a head whose representation is the backbone: with its features passed in,
    the Scorer runs nothing (kNN and density both read them)."""
    torch.manual_seed(0)
    method = create_method(load_config("simclr-digits"), SHAPE).eval()
    scorer, opts = _scorer(method, "fp32")
    images = torch.randint(0, 256, (10, *SHAPE), dtype=torch.uint8)
    feats = extract(method, images, "backbone")
    scores, seen = _with_backbone_images(method, lambda: scorer.all(images, feats=feats))
    assert seen == 0 and set(scores) == {"knn_distance", "density"}
    torch.testing.assert_close(scores["density"], scorer.density.score(feats).float())


def _subclass(method, **overrides):
    """The same model as an instance of a one-off subclass that overrides some of its methods (a plugin's way)."""
    method.__class__ = type(f"Plugin{type(method).__name__}", (type(method),), overrides)
    return method


def test_a_plugins_own_extra_score_and_own_represent_are_asked():
    """A subclass that overrides extra_uncertainty (adding a score) or represent (drawing noise) is asked through
    them: its score is reported, and represent's draws stay out of the seeded mc_dispersion draws."""
    base = _fitted("vsimclr-digits")
    scorer, opts = _scorer(base, "fp32")
    images = torch.randint(0, 256, (12, *SHAPE), dtype=torch.uint8)
    reference = scorer.all(images)

    def extra_uncertainty(self, images, only=None):
        return {**super(type(self), self).extra_uncertainty(images, only), "darkness": 1 - images.mean((1, 2, 3))}

    def extra_uncertainty_kinds(self, fitted_only=True):
        return [*super(type(self), self).extra_uncertainty_kinds(fitted_only), "darkness"]

    def extra_uncertainty_descriptions(self):
        return {k: "1 - mean pixel" if k == "darkness" else k for k in self.extra_uncertainty_kinds()}

    def represent(self, images, kind="auto"):
        return super(type(self), self).represent(images, kind) + 1e-3 * torch.rand(len(images), 1)

    plugin = _subclass(
        _fitted("vsimclr-digits"),
        extra_uncertainty=extra_uncertainty,
        extra_uncertainty_kinds=extra_uncertainty_kinds,
        extra_uncertainty_descriptions=extra_uncertainty_descriptions,
        represent=represent,
    )
    plugin_scorer = Scorer(plugin, "auto", scorer.train_x, opts, "cpu", train_backbone=None)
    scores = plugin_scorer.all(images)
    assert "darkness" in plugin_scorer.names
    torch.testing.assert_close(scores["darkness"], 1 - to_float_images(images).mean((1, 2, 3)))
    torch.testing.assert_close(scores["mc_dispersion"], reference["mc_dispersion"])
    torch.testing.assert_close(scores["epistemic"], reference["epistemic"])


def test_scores_in_the_evaluation_precision_take_one_pass():
    """score_precision='same' with bf16: one pass under bf16 autocast makes every score; the kNN / density scores
    are the bf16 ones as before, the posterior's and the head's come within bf16 rounding of the float32 ones."""
    method = _fitted("vsimclr-digits")
    scorer, opts = _scorer(method, "bf16")
    images = torch.randint(0, 256, (24, *SHAPE), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    reference = scorer.all(images)
    scorer.opts = dataclasses.replace(opts, score_precision="same")
    scores, seen = _with_backbone_images(method, lambda: scorer.all(images))
    assert seen == len(images) and set(scores) == set(reference)
    for name in ("knn_distance", "density"):
        torch.testing.assert_close(scores[name], reference[name], rtol=1e-4, atol=1e-5, msg=name)
    for name in ("log_det_cov", "epistemic"):
        assert scores[name].dtype == torch.float32
        assert not torch.equal(scores[name], reference[name]), name  # really computed in bf16
        torch.testing.assert_close(
            scores[name], reference[name], rtol=0.05, atol=0.05 * float(reference[name].abs().mean())
        )
    # the posterior's head ran in float32 on the bf16 features (a bf16 head rounds sigma to 8 significant bits)
    with torch.no_grad():
        with autocast(torch.device("cpu"), "bf16"):
            features = method.forward_features(to_float_images(images))
        q = method.posterior_from_features(features.float())
    torch.testing.assert_close(scores["log_det_cov"], q.uncertainty("log_det_cov").float(), rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match=re.escape("score_precision must be fp32 | same")):
        EvalOptions(score_precision="bf16")
