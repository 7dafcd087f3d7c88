"""The retrieval (URL R@1 / R-AUROC on held-out classes and zero-shot datasets), ambiguity (blends, crops) and
density parts of the evaluation, end to end on a digits run trained on classes 0-4."""

import pytest
import torch

from probssl.config import load_config
from probssl.evaluation import evaluate_run
from probssl.evaluation.sections.retrieval import HELD_OUT
from probssl.train import Trainer

TINY = ["train.epochs=3", "train.batch_size=64", "train.progress=false", "data.classes=[0, 1, 2, 3, 4]"]


@pytest.fixture(scope="module")
def metrics(tmp_path_factory):
    torch.manual_seed(0)
    run = tmp_path_factory.mktemp("transfer") / "vsimclr"
    Trainer(load_config("vsimclr-digits", overrides=TINY), run).fit()
    return evaluate_run(run, mode="quick", ood=["noise"], ambiguity=True, ambiguity_samples=60, write=False)


def test_training_kept_only_the_chosen_classes(metrics):
    assert metrics["splits"]["num_classes"] == 5 and metrics["splits"]["classes"] == ["0", "1", "2", "3", "4"]


def test_held_out_classes_get_recall_and_r_auroc_for_every_score(metrics):
    r = metrics["retrieval"]
    held = r["targets"][HELD_OUT]
    assert held["num_images"] > 100 and 0.3 < held["R@1"] <= 1  # digits 5-9 are still retrievable
    assert set(held["R-AUROC"]) == set(metrics["uncertainty"]["scores_available"])
    assert all(0 <= v <= 1 for v in held["R-AUROC"].values())
    assert metrics["summary"][f"R-AUROC/{HELD_OUT}"] == held["R-AUROC"][r["primary"]]


def test_density_score_exists_for_every_method_and_flags_noise(metrics):
    u = metrics["uncertainty"]
    assert "density" in u["scores_available"]
    assert u["scores"]["density"]["ood"]["noise"]["auroc"] > 0.9  # noise is far from every class mean
    assert 0 <= u["scores"]["density"]["selective"]["augrc"] <= 1


def test_ambiguity_blends_and_crops(metrics):
    a = metrics["ambiguity"]
    assert a["num_images"] == 60 and a["lambdas"][0] == 1.0
    for s in a["scores"].values():
        assert -1 <= s["blend_spearman"] <= 1 and 0 <= s["crop_bigger"] <= 1
    assert metrics["summary"]["blend_spearman"] == a["scores"][a["primary"]]["blend_spearman"]


def test_a_loss_prediction_head_is_scored_like_every_other_score(tmp_path):
    overrides = [
        "train.epochs=2",
        "train.batch_size=64",
        "train.progress=false",
        "method.loss_prediction=true",
        "data.train_subset=256",
    ]
    Trainer(load_config("simclr-digits", overrides=overrides), tmp_path / "run").fit()
    m = evaluate_run(tmp_path / "run", mode="quick", ood=["noise"], write=False)
    u = m["uncertainty"]
    assert "predicted_loss" in u["scores_available"] and u["scores"]["predicted_loss"]["mean_test"] > 0
    assert "predicted per-sample SSL loss" in u["scores"]["predicted_loss"]["description"]
