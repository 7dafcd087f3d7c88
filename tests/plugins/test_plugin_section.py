"""A new evaluation section, from this one file without editing probssl/: it appears in eval.json, the summary,
`probssl eval --skip` and the report."""

import json

import pytest
import torch

from probssl.cli.main import main
from probssl.config import load_config
from probssl.evaluation import Section, evaluate_run, register_section, skip_names
from probssl.evaluation.sections import unregister_section
from probssl.train import Trainer


class FeatureNorm(Section):
    """Mean L2 norm of the test representations, and the share of near-zero dimensions."""

    name = "test_feature_norm"
    title = "Feature norms"
    order = 55
    option_defaults = {"eps": 1e-3}

    def run(self, ctx):
        z = ctx.feats[2]
        eps = ctx.option(self.name, "eps", self.option_defaults["eps"])
        return {
            "mean_norm": float(z.norm(dim=1).mean()),
            "dead_dims": float((z.abs().max(0).values < eps).float().mean()),
        }

    def summary(self, result):
        return {"feature_norm": result["mean_norm"], "dead_dims": result["dead_dims"]}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    register_section(FeatureNorm)
    run = tmp_path_factory.mktemp("section") / "run"
    config = load_config("simclr-digits", overrides=["train.epochs=1", "data.train_subset=256", "train.progress=false"])
    Trainer(config, run).fit()
    yield run
    unregister_section(FeatureNorm.name)


def test_it_runs_and_reaches_eval_json_and_the_summary(run_dir):
    m = evaluate_run(run_dir, mode="quick", ood=[])
    assert m["test_feature_norm"]["mean_norm"] > 0
    assert m["summary"]["feature_norm"] == m["test_feature_norm"]["mean_norm"]
    assert json.loads((run_dir / "eval.json").read_text())["summary"]["dead_dims"] == m["summary"]["dead_dims"]


def test_it_can_be_skipped_from_the_cli_and_reaches_the_report(run_dir, tmp_path):
    assert "test_feature_norm" in skip_names()
    assert main(["eval", str(run_dir), "--quick", "--ood", "--skip", "test_feature_norm"]) == 0
    assert "test_feature_norm" not in json.loads((run_dir / "eval.json").read_text())
    assert main(["eval", str(run_dir), "--quick", "--ood"]) == 0
    assert main(["report", str(run_dir), "--out", str(tmp_path / "rep")]) == 0
    report = (tmp_path / "rep" / "report.md").read_text()
    assert ". Feature norms" in report and "| feature_norm | dead_dims |" in report
    payload = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert payload["groups"]["simclr"]["metrics"]["feature_norm"]["n"] == 1


def test_its_options_come_from_eval_options(run_dir):
    m = evaluate_run(run_dir, mode="quick", ood=[], extra={"test_feature_norm": {"eps": 1e9}}, write=False)
    assert m["summary"]["dead_dims"] == 1.0 and m["options"]["extra"] == {"test_feature_norm": {"eps": 1e9}}
    assert torch.isfinite(torch.tensor(m["summary"]["feature_norm"]))
