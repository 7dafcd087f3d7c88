"""evaluate_run / evaluate_method: every section present, every value in its valid range, and the helpers
(probe predictions, OOD sets, representation bits, options) against known answers."""

import json
import math

import pytest
import torch

from probssl.config import Config, ConfigError, load_config
from probssl.data import DataError, load_dataset
from probssl.evaluation import (
    EvalOptions,
    evaluate_method,
    evaluate_run,
    linear_probe,
    linear_probe_predictions,
    make_ood_images,
    representation_bits,
)
from probssl.evaluation.ood import adapt_images
from probssl.evaluation.scoring import mc_dispersion
from probssl.methods import create_method
from probssl.train import Trainer, load_splits

TINY = ["train.epochs=2", "train.batch_size=64", "data.train_subset=256", "train.progress=false"]
# Every section on, with the sample sizes cut so the whole evaluation takes a few seconds.
SMALL = dict(
    corruption_samples=60,
    style_train_samples=256,
    style_test_samples=120,
    map_samples=150,
    mc_samples=8,
    alignment_samples=200,
)


def _in(x, lo, hi):
    return x is not None and lo <= x <= hi


@pytest.fixture(scope="module")
def vsimclr_run(tmp_path_factory):
    torch.manual_seed(0)
    run = tmp_path_factory.mktemp("eval") / "vsimclr"
    Trainer(load_config("vsimclr-digits", overrides=TINY), run).fit()
    metrics = evaluate_run(run, ood=["noise", "shuffled"], **SMALL)
    return run, metrics


def test_evaluate_run_writes_every_section(vsimclr_run):
    run, m = vsimclr_run
    on_disk = json.loads((run / "eval.json").read_text())
    assert on_disk["summary"] == m["summary"]
    for key in (
        "schema",
        "run",
        "config",
        "options",
        "representation",
        "splits",
        "selection",
        "probes",
        "geometry",
        "information",
        "uncertainty",
        "compression",
        "content_style",
        "style_tasks",
        "embedding_map",
        "images",
        "summary",
        "timing",
    ):
        assert key in m, key
    assert m["representation"]["kind"] == "backbone" and m["options"]["ood"] == ["noise", "shuffled"]
    assert m["splits"]["train"] == 256 and m["splits"]["test"] == 359 and m["splits"]["dataset"] == "digits"
    assert (run / m["images"]["certainty"]).stat().st_size > 1000
    assert (run / "eval.json").stat().st_size < 400_000  # per-sample arrays are subsampled


def test_probe_geometry_and_information_values_are_in_range(vsimclr_run):
    m = vsimclr_run[1]
    p = m["probes"]
    for name in ("linear", "knn", "mlp"):
        assert _in(p[name]["test_acc"], 0, 1) and _in(p[name]["val_acc"], 0, 1)
    assert p["linear"]["test_acc"] > 0.3  # far above chance (0.1) even after 2 epochs
    assert p["linear"]["selected"]["weight_decay"] in m["options"]["linear_weight_decays"]
    assert p["knn"]["selected"]["k"] in m["options"]["knn_k"]
    c = p["clustering"]
    assert _in(c["acc"], 0.1, 1) and _in(c["nmi"], 0, 1) and _in(c["ari"], -1, 1)
    g = m["geometry"]
    for space in ("representation", "embedding"):
        assert 1 <= g[space]["effective_rank"] <= g[space]["dim"] + 1e-6
        assert len(g[space]["spectrum"]) == g[space]["dim"] and min(g[space]["spectrum"]) >= 0
        assert _in(g[space]["alignment"], 0, 4) and _in(g[space]["uniformity"], -4, 0)
    info = m["information"]
    h = info["entropy_y"]["bits"]
    assert _in(h, 3.2, math.log2(10) + 1e-9)
    assert info["classifier_lower_bound"]["bits"] <= h + 1e-9 and info["classifier_lower_bound"]["bits"] > 0.5
    assert "Ross" in info["knn_ross"]["method"]


def test_uncertainty_section(vsimclr_run):
    u = vsimclr_run[1]["uncertainty"]
    # every named score of the projected normal (the method's default first), then the generic ones
    assert u["primary"] == u["scores_available"][0]
    assert set(u["scores_available"]) == {
        "angular_spread",
        "log_det_cov",
        "sigma_mean",
        "trace",
        "mc_dispersion",
        "knn_distance",
        "density",
        "epistemic",  # VSimCLR's feature density, fitted when training ends (on by default)
        "combined",
    }
    for name in ("sigma_mean", "trace", "angular_spread"):
        assert u["scores"][name]["mean_test"] > 0
    assert u["scores"]["log_det_cov"]["description"].startswith("log det")
    assert set(u["ood_sets"]) == {"noise", "shuffled"}
    for s in u["scores"].values():
        for ood in ("noise", "shuffled"):
            r = s["ood"][ood]
            assert _in(r["auroc"], 0, 1) and _in(r["aupr"], 0, 1) and _in(r["fpr95"], 0, 1)
        mis = s["misclassification"]
        assert _in(mis["auroc"], 0, 1) and _in(mis["error_rate"], 0, 1)
        sel = s["selective"]
        assert len(sel["coverage"]) == 50 and sel["coverage"][-1] == 1.0
        assert sel["accuracy"][-1] == pytest.approx(1 - mis["error_rate"], abs=1e-6)
        assert 0 <= sel["aurc_optimal"] <= sel["aurc"] + 1e-12 <= 1 + 1e-12
        for corruption in ("gaussian_noise", "blur", "occlusion"):
            c = s["corruption"][corruption]
            assert c["severity"] == [0, 1, 2, 3, 4, 5] and len(c["mean_uncertainty"]) == 6
            assert _in(c["spearman"], -1, 1)
    assert all(0 <= x <= 1 for x in u["samples"]["test"]["mc_dispersion"])
    assert all(0 <= x <= 2 for x in u["samples"]["test"]["knn_distance"])
    n = len(u["samples"]["test_index"])
    assert n == 359 and len(u["samples"]["labels"]) == n and len(u["samples"]["correct"]) == n
    assert len(u["samples"]["ood"]["noise"][u["primary"]]) == 359


def test_compression_style_and_map_sections(vsimclr_run):
    m = vsimclr_run[1]
    c = m["compression"]
    dim = m["representation"]["dim"]
    assert c["representation_bits"] == 32 * dim and c["input_bits"] == 8 * 8 * 8
    assert c["ratio"] == pytest.approx(512 / (32 * dim)) and c["linear_acc"] == m["summary"]["linear_acc"]
    assert "curve" not in c  # float codes get no prefix curve by default
    cs = m["content_style"]
    assert set(cs) == {"content", "rotation", "scale", "translation_x", "brightness", "thickness"}
    for _task, r in cs.items():
        assert _in(r["acc"], 0, 1) and r["chance"] > 0
    assert set(m["style_tasks"]) == set(cs) - {"content"}
    e = m["embedding_map"]
    assert len(e["x"]) == len(e["y"]) == len(e["labels"]) == len(e["uncertainty"]) == 150
    assert all(math.isfinite(v) for v in e["x"] + e["y"])
    s = m["summary"]
    primary = m["uncertainty"]["primary"]
    assert s["uncertainty_score"] == primary
    assert s["ood_auroc/noise"] == m["uncertainty"]["scores"][primary]["ood"]["noise"]["auroc"]
    assert s["mean_uncertainty"] == m["mean_uncertainty"] and math.isfinite(s["mean_uncertainty"])  # log det: any sign
    assert set(m["timing"]) >= {
        "features",
        "linear",
        "knn",
        "mlp",
        "uncertainty",
        "corruptions",
        "content_style",
        "embedding_map",
        "images",
        "total",
    }


# ----------------------------------------------------------------------------- deterministic / generative


def _toy_generative(method):
    """An untrained SimCLR given the reconstruct / sample methods of generative methods."""
    method.reconstruct = lambda images: images.flip(-1)
    method.sample = lambda n, generator=None: torch.rand(n, 1, 8, 8, generator=generator)
    return method


def test_deterministic_method_gets_a_knn_row_and_generative_images(tmp_path):
    config = load_config("simclr-digits", overrides=["data.train_subset=256"])
    splits = load_splits(config)
    method = _toy_generative(create_method(config, splits.image_shape))
    opts = EvalOptions.quick(
        ood=("vflip",), images=True, mlp=False, clustering=False, information=False, alignment=False
    )
    m = evaluate_method(method, splits, opts, config=config, image_dir=tmp_path)
    assert m["uncertainty"]["primary"] == "knn_distance"
    assert list(m["uncertainty"]["scores"]) == ["knn_distance", "density"]  # the two scores every method has
    assert "mean_uncertainty" not in m and m["options"]["style"] is False
    assert {"certainty", "reconstructions", "samples"} <= set(m["images"])
    for path in m["images"].values():
        assert (tmp_path / path.split("/")[-1]).stat().st_size > 1000


def test_impossible_representation_is_a_config_error():
    config = load_config("simclr-digits", overrides=["data.train_subset=256"])
    splits = load_splits(config)
    with pytest.raises(ConfigError, match="bits"):
        evaluate_method(create_method(config, splits.image_shape), splits, EvalOptions.quick(representation="bits"))


# ----------------------------------------------------------------------------- helpers, known answers


def test_linear_probe_predictions_reproduce_linear_probe():
    g = torch.Generator().manual_seed(0)
    centres = 2 * torch.randn(4, 6, generator=g)

    def split(n):
        y = torch.arange(n) % 4
        return centres[y] + torch.randn(n, 6, generator=g), y

    (a, ay), (b, by), (c, cy) = split(200), split(80), split(120)
    ref = linear_probe(a, ay, b, by, c, cy)
    res, pred = linear_probe_predictions(a, ay, b, by, c, cy)
    assert res.test_acc == ref.test_acc and res.selected == ref.selected and res.val_scores == ref.val_scores
    assert (pred == cy).float().mean().item() == ref.test_acc and pred.shape == (120,)


def test_synthetic_ood_sets():
    splits = load_dataset("digits")
    test = splits.test.images
    noise, _ = make_ood_images("noise", splits, seed=1)
    assert noise.shape == test.shape and noise.dtype == torch.uint8 and noise.float().std() > 60
    shuffled, desc = make_ood_images("shuffled", splits)
    assert "permuted" in desc and shuffled.shape == test.shape
    assert torch.equal(shuffled.flatten(1).sort(1).values, test.flatten(1).sort(1).values)  # same pixels
    assert not torch.equal(shuffled, test)
    assert torch.equal(make_ood_images("inverted", splits)[0], 255 - test)
    assert torch.equal(make_ood_images("vflip", splits)[0], test.flip(-2))
    assert torch.equal(make_ood_images("noise", splits, seed=3)[0], make_ood_images("noise", splits, seed=3)[0])
    assert len(make_ood_images("noise", splits, max_images=50)[0]) == 50
    with pytest.raises(DataError, match="synthetic"):
        make_ood_images("gaussian-blobs", splits)
    with pytest.raises(DataError, match="in-distribution"):
        make_ood_images("digits", splits)


def test_dataset_ood_is_converted_to_the_run_shape(shared_data_dir):
    splits = load_dataset("digits")
    config = load_config("simclr-digits", overrides=[f"data.data_dir={shared_data_dir}", "data.download=false"])
    images, desc = make_ood_images("mnist", splits, config, max_images=500)
    assert images.shape == (500, 1, 8, 8) and images.dtype == torch.uint8 and "mnist" in desc


def test_adapt_images_channels_and_size():
    grey = torch.full((2, 1, 4, 4), 100, dtype=torch.uint8)
    rgb = adapt_images(grey, (3, 8, 8))
    assert rgb.shape == (2, 3, 8, 8) and int(rgb.min()) == int(rgb.max()) == 100
    back = adapt_images(torch.full((1, 3, 4, 4), 200, dtype=torch.uint8), (1, 2, 2))
    assert back.shape == (1, 1, 2, 2) and int(back.max()) == 200  # luma weights sum to 1


def test_representation_bits_rules():
    config = load_config("scl-bernoulli-digits")
    scl = create_method(config, (1, 8, 8))
    d = scl.latent_dim
    assert representation_bits(scl, "bits", d) == (d, "1 bit per dimension (binary code)")
    simclr = create_method(load_config("simclr-digits"), (1, 8, 8))
    assert representation_bits(simclr, "backbone", 64)[0] == 2048
    gaussian = create_method(load_config("scl-gaussian-digits"), (1, 8, 8))
    assert representation_bits(gaussian, "mean", gaussian.latent_dim)[0] == 32 * gaussian.latent_dim


def test_mc_dispersion_is_zero_for_a_point_mass_and_near_one_for_a_flat_posterior():
    simclr = create_method(load_config("simclr-digits"), (1, 8, 8))
    images = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8)
    assert torch.allclose(mc_dispersion(simclr, images, 16, 64, "cpu", 0), torch.zeros(5), atol=1e-6)
    vsimclr = create_method(load_config("vsimclr-digits"), (1, 8, 8))
    # A huge posterior scale relative to the mean: samples are nearly uniform on the sphere.
    vsimclr.head_params = lambda f: (torch.full((len(f), 64), 1e-3), torch.ones(len(f), 64))
    disp = mc_dispersion(vsimclr, images, 400, 64, "cpu", 0)
    assert bool((disp > 0.85).all()) and bool((disp <= 1).all())  # E||mean of 400 uniform||~ 1/sqrt(400) = 0.05


def test_options_modes_and_config():
    assert not EvalOptions.quick().mlp and EvalOptions.quick().clustering
    assert EvalOptions.full().style_train_samples is None and EvalOptions.full().compression_curve
    cfg = Config().eval
    cfg.knn_k = [3]
    assert EvalOptions.from_config(cfg).knn_k == (3,)
    assert EvalOptions.make("quick", cfg, seed=4).seed == 4
    with pytest.raises(ValueError):
        EvalOptions.make("slow")


def test_fine_tuning_trains_a_copy_and_selects_on_validation(tmp_path):
    from probssl.config import load_config
    from probssl.evaluation.finetune import fine_tune
    from probssl.train import Trainer

    config = load_config(
        "simclr-digits",
        overrides=["train.epochs=2", "train.batch_size=64", "data.train_subset=256", "train.progress=false"],
    )
    method = Trainer(config, tmp_path / "ft").fit()
    before = {k: v.clone() for k, v in method.state_dict().items()}
    result = fine_tune(method, Trainer(config, tmp_path / "ft2").splits, config, epochs=8, batch_size=64)
    assert all(torch.equal(before[k], v) for k, v in method.state_dict().items())  # the method is untouched
    assert len(result["val_curve"]) == 8 and result["val_acc"] == max(result["val_curve"])
    assert result["test_acc"] == result["test_curve"][result["epoch"] - 1]
    assert result["test_acc"] > 0.4  # 32 supervised steps on 256 digits: far above chance (0.1)


def test_a_preset_sets_the_fine_tuning_protocol(tmp_path):
    """eval.fine_tune* in a run's config: evaluate_run fine-tunes with that schedule without being asked (as the SCL
    paper presets do), and an explicit option still wins."""
    from probssl.config import load_config
    from probssl.evaluation import evaluate_run
    from probssl.train import Trainer

    sets = ["eval.fine_tune=true", "eval.fine_tune_epochs=2", "eval.fine_tune_batch_size=32", "eval.fine_tune_lr=3e-4"]
    sets += ["eval.fine_tune_weight_decay=0.0"]
    config = load_config("simclr-digits", overrides=[*TINY, *sets])
    opts = EvalOptions.make("quick", config.eval)
    assert (opts.fine_tune, opts.fine_tune_epochs, opts.fine_tune_batch_size) == (True, 2, 32)
    assert (opts.fine_tune_lr, opts.fine_tune_weight_decay) == (3e-4, 0.0)
    Trainer(config, tmp_path / "run").fit()
    report = evaluate_run(tmp_path / "run", mode="quick", ood=[])
    tuned = report["fine_tuning"]
    assert tuned["epochs"] == 2 and tuned["lr"] == 3e-4 and tuned["weight_decay"] == 0.0
    assert report["summary"]["fine_tune_acc"] == tuned["test_acc"]
    assert "fine_tuning" not in evaluate_run(tmp_path / "run", mode="quick", ood=[], fine_tune=False)


@pytest.mark.parametrize("preset,kind", [("scl-bernoulli-digits", "auto"), ("vsimclr-digits", "mean")])
def test_the_splits_features_come_from_one_pass_per_split(preset, kind):
    """The context's train / val / test representations, the test embedding and the training split's backbone
    features (for the density score) equal what extract makes of each on its own, from one network pass per split."""
    from probssl.evaluation.evaluate import _context
    from probssl.evaluation.features import extract

    config = load_config(preset, overrides=["data.train_subset=128"])
    splits = load_splits(config)
    torch.manual_seed(0)
    method = create_method(config, splits.image_shape).eval()
    seen = []
    handle = method.backbone.register_forward_hook(lambda _m, inputs, _o: seen.append(len(inputs[0])))
    try:
        ctx = _context(method, splits, EvalOptions.quick(representation=kind), "cpu", config, None)
    finally:
        handle.remove()
    images = [splits.train.images, splits.val.images, splits.test.images]
    assert sum(seen) == 2 + sum(len(x) for x in images)  # + the 2-image check of the representation
    for feats, x in zip(ctx.feats, images):
        torch.testing.assert_close(feats, extract(method, x, ctx.kind))
    torch.testing.assert_close(ctx.embedding, extract(method, splits.test.images, "mean"))
    assert ctx.kind != "backbone" and "backbone_train" in ctx._cache
    torch.testing.assert_close(ctx.backbone_train(), extract(method, splits.train.images, "backbone"))
