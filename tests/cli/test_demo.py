import json
import math

from probssl.cli.demo import run_demo


def test_demo_writes_report_plots_and_the_promised_metrics(tmp_path):
    payload = run_demo(tmp_path / "demo", epochs=2)
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert set(metrics["methods"]) == {"simclr", "vsimclr"}
    for _name, m in metrics["methods"].items():
        assert 0 <= m["linear_acc"] <= 1 and 0 <= m["knn_acc"] <= 1 and m["effective_rank"] >= 1
    assert math.isfinite(metrics["methods"]["vsimclr"]["mean_uncertainty"])  # the default, log det K, has any sign
    assert metrics["methods"]["vsimclr"]["uncertainty_score"] == "epistemic"  # evidence: docs/uncertainty.md
    assert {"raw_pixels", "random_encoder"} <= set(metrics["baselines"])
    report = (tmp_path / "demo" / "report.md").read_text()
    linked = [line.split("](")[1].rstrip(")") for line in report.splitlines() if line.startswith("![")]
    assert linked and all((tmp_path / "demo" / png).stat().st_size > 5000 for png in linked)
    assert payload["total_seconds"] > 0
