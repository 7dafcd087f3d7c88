"""The equal-size comparison sections: style probes at equal dimension (style_at_dim) and float features stored in
a bit budget (quantized). Off by default, switched on through EvalOptions.extra, reaching eval.json's summary."""

from types import SimpleNamespace

import pytest
import torch

from probssl.config import load_config
from probssl.evaluation import EvalOptions, evaluate_run
from probssl.evaluation.probes import linear_probe
from probssl.evaluation.sections.quantized import Quantized
from probssl.train import Trainer


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("equal-size") / "run"
    config = load_config("simclr-digits", overrides=["train.epochs=1", "data.train_subset=400", "train.progress=false"])
    Trainer(config, run).fit()
    return run


def test_both_sections_are_off_by_default(run_dir):
    m = evaluate_run(run_dir, mode="quick", ood=[], write=False)
    assert "style_at_dim" not in m and "quantized" not in m
    assert not any("@" in k for k in m["summary"])


def test_style_at_dim_reduces_by_pca_and_uses_a_small_representation_whole(run_dir):
    extra = {"style_at_dim": {"dims": [4, 100000]}}
    m = evaluate_run(run_dir, mode="quick", ood=[], write=False, extra=extra, style_train_samples=300)
    r = m["style_at_dim"]
    width = r["representation_dim"]
    assert set(r["by_dim"]) == {"4", "100000"}
    assert r["by_dim"]["4"]["reduction"] == "PCA" and 0 < r["by_dim"]["4"]["explained_variance"] <= 1
    assert r["by_dim"]["100000"]["reduction"].startswith("none") and width < 100000
    tasks = set(r["by_dim"]["4"]["probes"])
    assert {"content", "rotation", "thickness"} <= tasks
    for task, p in r["by_dim"]["4"]["probes"].items():
        key = "content_acc@4d" if task == "content" else f"style_acc@4d/{task}"
        assert m["summary"][key] == p["acc"] and 0 <= p["acc"] <= 1
    # 4 principal coordinates hold less of the class than the whole representation
    assert m["summary"]["content_acc@4d"] < m["summary"]["content_acc@100000d"]


def test_quantized_reaches_the_summary_with_the_bits_it_used(run_dir):
    m = evaluate_run(run_dir, mode="quick", ood=[], write=False, extra={"quantized": {"bits": [4, 16, 100000]}})
    r = m["quantized"]
    width = r["representation_dim"]
    assert r["by_bits"]["4"].keys() == {"sign", "best", "best_acc"}  # fewer than 8 bits: no 8-bit row
    assert r["by_bits"]["16"]["8bit"]["bits_used"] == 16 and r["by_bits"]["16"]["sign"]["bits_used"] == 16
    assert r["by_bits"]["100000"]["sign"]["bits_used"] == width  # capped at the representation's size
    for b, row in r["by_bits"].items():
        assert m["summary"][f"quantized_acc@{b}bits"] == row["best_acc"] == row[row["best"]]["linear_acc"]


def _ctx(feats, labels):
    return SimpleNamespace(feats=feats, labels=labels, opts=EvalOptions(), option=lambda section, key, default: [2, 64])


def test_quantized_probe_matches_the_float_probe_when_the_bits_suffice_and_loses_when_they_do_not():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(8, 16, generator=g) * 3
    labels = [torch.randint(0, 8, (n,), generator=g) for n in (2000, 500, 1000)]
    feats = [centres[y] + torch.randn(len(y), 16, generator=g) for y in labels]
    float_acc = linear_probe(*[t for pair in zip(feats, labels) for t in pair]).test_acc
    r = Quantized().run(_ctx(feats, labels))["by_bits"]
    assert r["64"]["8bit"]["linear_acc"] == pytest.approx(float_acc, abs=0.01)  # 8 coordinates x 8 bits
    assert r["2"]["best_acc"] < float_acc - 0.2  # 2 bits cannot name 8 classes
