"""Reports: seeds grouped into mean ± s.e. with known numbers, and every plot written."""

import json
import math
from pathlib import Path

import pytest

from probssl.config import load_config
from probssl.report import aggregate, flat_metrics, group_runs, write_report
from probssl.report.plots import (
    plot_accuracy_vs_bits,
    plot_content_style,
    plot_corruption_curves,
    plot_embedding_maps,
    plot_ood_histograms,
    plot_selective_curves,
    plot_spectra,
)


def _fake_run(root: Path, name: str, method: str, seed: int, linear: float, beta: float = 1.0, **summary) -> Path:
    run = root / name
    run.mkdir()
    overrides = [f"train.seed={seed}"] + ([f"method.beta={beta}"] if method != "simclr" else [])  # simclr has no beta
    config = load_config(f"{method}-digits", overrides=overrides).to_dict()
    m = {
        "schema": 2,
        "run": {"method": method, "seed": seed, "dataset": "digits"},
        "config": config,
        "representation": {"kind": "backbone", "dim": 64},
        "splits": {"dataset": "digits", "train": 1294, "val": 144, "test": 359},
        "summary": {"linear_acc": linear, **summary},
        "probes": {"linear": {"test_acc": linear, "selected": {"weight_decay": 0.0}}},
    }
    (run / "eval.json").write_text(json.dumps(m))
    return run


def test_aggregate_mean_and_standard_error():
    a = aggregate([0.8, 0.9, 1.0])
    assert a["mean"] == pytest.approx(0.9) and a["n"] == 3
    assert a["se"] == pytest.approx(0.1 / math.sqrt(3))  # std (ddof=1) = 0.1
    assert aggregate([0.5])["se"] is None


def test_report_groups_seeds_with_mean_and_standard_error(tmp_path):
    runs = [
        _fake_run(tmp_path, f"v{s}", "vsimclr", s, acc, knn_acc=0.5 + s / 10)
        for s, acc in zip((0, 1, 2), (0.8, 0.9, 1.0))
    ]
    runs.append(_fake_run(tmp_path, "s0", "simclr", 0, 0.7))
    runs.append(_fake_run(tmp_path, "vb", "vsimclr", 0, 0.6, beta=0.1))  # another config: its own group
    payload = write_report(runs, tmp_path / "rep")
    groups = payload["groups"]
    assert [g["n"] for g in groups.values()] == [3, 1, 1]
    label = next(k for k, g in groups.items() if g["n"] == 3)
    assert "vsimclr" in label and "beta=1.0" in label  # same-method groups are told apart by their config
    assert groups[label]["seeds"] == [0, 1, 2]
    lin = groups[label]["metrics"]["linear_acc"]
    assert lin["mean"] == pytest.approx(0.9) and lin["se"] == pytest.approx(0.1 / math.sqrt(3))
    assert groups[label]["metrics"]["knn_acc"]["mean"] == pytest.approx(0.6)
    assert groups["simclr"]["metrics"]["linear_acc"] == {"mean": 0.7, "se": None, "n": 1, "values": [0.7]}
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "0.9000 ± 0.0577" in report and "| simclr | 0.7000 |" in report
    assert json.loads((tmp_path / "rep" / "metrics.json").read_text())["groups"][label]["n"] == 3


def test_group_order_and_missing_eval(tmp_path):
    runs = [_fake_run(tmp_path, "b", "vsimclr", 1, 0.5), _fake_run(tmp_path, "a", "vsimclr", 0, 0.4)]
    ((label, members),) = group_runs(runs).items()
    assert [m[1]["run"]["seed"] for m in members] == [0, 1]  # sorted by seed
    with pytest.raises(FileNotFoundError, match="probssl eval"):
        write_report([tmp_path / "missing"], tmp_path / "rep")


def test_report_writes_every_plot_and_section(real_eval, tmp_path):
    payload = write_report(real_eval, tmp_path / "rep", title="T")
    out = tmp_path / "rep"
    for name in (
        "spectrum",
        "uncertainty_ood",
        "selective",
        "corruption",
        "embedding_map",
        "accuracy_vs_bits",
        "content_style",
        "loss",
        "vsimclr/certainty",
    ):
        assert name in payload["plots"], name
        assert (out / payload["plots"][name]).stat().st_size > 5000, name
    report = (out / "report.md").read_text()
    for heading in (
        "Probes",
        "Geometry",
        "Information",
        "Uncertainty",
        "Embedding map",
        "Images",
        "Compression",
        "Content vs style",
        "Training",
        "Protocol",
    ):
        assert f"{heading}" in report, heading
    assert " ± " in report  # two seeds of one config
    for png in payload["plots"].values():
        assert f"]({png})" in report
    flat = flat_metrics(json.loads((real_eval[0] / "eval.json").read_text()))
    assert {"score/angular_spread/ood_auroc/vflip", "score/knn_distance/aurc", "style_acc/rotation"} <= set(flat)


def test_plot_functions_write_pngs(tmp_path):
    written = [
        plot_spectra(
            {"a": {"representation": [4.0, 1.0, 0.1], "embedding": [1.0, 0.5]}, "b": [2.0, 1.0]}, tmp_path / "s.png"
        ),
        plot_ood_histograms(
            {"a": {"score": "posterior", "test": [0.1, 0.2, 0.3], "ood": {"noise": [0.5, 0.6]}}}, tmp_path / "o.png"
        ),
        plot_selective_curves(
            {"a": {"knn_distance": {"coverage": [0.5, 1.0], "accuracy": [1.0, 0.8], "aurc": 0.1}}}, tmp_path / "sel.png"
        ),
        plot_embedding_maps(
            {"a": {"x": [0, 1, 2], "y": [1, 0, 2], "labels": [0, 1, 1], "uncertainty": [0.1, 0.3, 0.2]}},
            tmp_path / "m.png",
            ["zero", "one"],
        ),
        plot_accuracy_vs_bits(
            {
                "a": {
                    "bits": 64,
                    "acc": 0.8,
                    "input_bits": 512,
                    "curve": [{"bits": 8, "linear_acc": 0.3}, {"bits": 64, "linear_acc": 0.8}],
                }
            },
            tmp_path / "b.png",
        ),
        plot_corruption_curves({"a": {"blur": [1, 1.1, 1.2, 1.3, 1.4, 1.5]}}, tmp_path / "c.png", {"a": "posterior"}),
        plot_content_style({"a": {"content": (0.9, 0.1), "rotation": (0.4, 0.2)}}, tmp_path / "cs.png"),
    ]
    for path in written:
        assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 5000


def test_a_stale_evaluation_is_marked(tmp_path):
    run = _fake_run(tmp_path, "a", "simclr", 0, 0.7)
    m = json.loads((run / "eval.json").read_text())
    m["run"]["step"] = 15
    (run / "eval.json").write_text(json.dumps(m))
    (run / "status.json").write_text(json.dumps({"status": "finished", "step": 100}))
    write_report([run], tmp_path / "rep")
    assert "stale**: evaluated at step 15, trained to 100" in (tmp_path / "rep" / "report.md").read_text()
