"""`probssl eval` and `probssl report` from the command line."""

import json

import pytest

from probssl.cli.main import main

QUICK = [
    "--set",
    "train.epochs=2",
    "--set",
    "train.progress=false",
    "--set",
    "data.train_subset=256",
    "--set",
    "train.batch_size=64",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    runs = []
    for seed in (0, 1):
        run = root / f"simclr-{seed}"
        assert (
            main(["train", "--preset", "simclr-digits", "--out", str(run), *QUICK, "--set", f"train.seed={seed}"]) == 0
        )
        runs.append(run)
    return runs


def test_eval_quick_with_ood_and_skip_then_report(trained, tmp_path, capsys):
    for run in trained:
        assert main(["eval", str(run), "--quick", "--ood", "noise", "vflip", "--skip", "clustering"]) == 0
    out = capsys.readouterr().out
    assert "ood_auroc/vflip" in out and "linear_acc" in out and "quick evaluation" in out
    m = json.loads((trained[0] / "eval.json").read_text())
    assert m["options"]["ood"] == ["noise", "vflip"] and m["options"]["mlp"] is False
    assert m["options"]["score_precision"] == "same"  # the default
    assert "clustering" not in m["probes"] and "content_style" not in m and "images" not in m
    assert m["uncertainty"]["primary"] == "knn_distance"

    assert main(["report", *map(str, trained), "--out", str(tmp_path / "rep"), "--title", "CLI"]) == 0
    out = capsys.readouterr().out
    assert "2 run(s) in 1 group(s): simclr (n=2)" in out
    report = (tmp_path / "rep" / "report.md").read_text()
    assert report.startswith("# CLI") and " ± " in report and "vflip" in report
    payload = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert payload["groups"]["simclr"]["seeds"] == [0, 1]
    for png in ("spectrum.png", "uncertainty_ood.png", "selective.png", "accuracy_vs_bits.png"):
        assert (tmp_path / "rep" / png).stat().st_size > 5000


def test_eval_user_errors_are_one_line(trained, capsys):
    assert main(["eval", str(trained[0]), "--quick", "--ood", "gaussian-blobs"]) == 2
    err = capsys.readouterr().err
    assert "Unknown dataset 'gaussian-blobs' for evaluation" in err and "noise" in err and "Traceback" not in err
    assert main(["eval", str(trained[0]), "--quick", "--representation", "bits"]) == 2
    assert "representation 'bits' cannot be evaluated" in capsys.readouterr().err


def test_report_without_eval_is_one_clear_error(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    assert main(["report", str(tmp_path / "run"), "--out", str(tmp_path / "rep")]) == 2
    assert "probssl eval" in capsys.readouterr().err


def test_eval_scores_in_float32_on_request(trained, capsys):
    assert main(["eval", str(trained[1]), "--quick", "--ood", "noise", "--score-precision", "fp32"]) == 0
    m = json.loads((trained[1] / "eval.json").read_text())
    assert m["options"]["score_precision"] == "fp32" and "knn_distance" in m["uncertainty"]["scores"]
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["eval", str(trained[1]), "--score-precision", "bf16"])
    assert "invalid choice: 'bf16'" in capsys.readouterr().err
