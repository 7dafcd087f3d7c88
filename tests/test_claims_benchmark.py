"""benchmarks/claims.py: one committed record per (dataset, config, seed) with its budget, the equal-size
comparisons and the uncertainty protocol; a second call trains nothing. benchmarks/claims_report.py: the verdict
rule, the default scores and the report read from the records."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import claims  # noqa: E402
import claims_docs  # noqa: E402
import claims_report  # noqa: E402
from uncertainty import mean_se  # noqa: E402


def test_records_budget_and_comparisons_then_resumes_without_training(tmp_path):
    records, runs, out = tmp_path / "rec", tmp_path / "runs", tmp_path / "report"
    cmd = [sys.executable, "benchmarks/claims.py", "--datasets", "digits", "--seeds", "0", "--epochs", "1"]
    cmd += ["--configs", "simclr", "scl-bits-32", "--style-dim", "4", "--set", "data.train_subset=300"]
    cmd += ["--records", str(records), "--runs", str(runs), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    rec = json.loads((records / "digits" / "scl-bits-32" / "seed0.json").read_text())
    assert rec["overrides"] == ["method.latent_dim=32", "method.epistemic=true"]
    assert rec["summary"]["representation_bits"] == 32 and "epistemic" in rec["scores"]
    assert rec["budget"]["epochs"] == 1 and rec["budget"]["train_images"] == 300 and rec["seed"] == 0
    assert rec["precision"] in {"fp32", "bf16"} and rec["cpu"]["cores"] >= 1
    simclr = json.loads((records / "digits" / "simclr" / "seed0.json").read_text())
    assert (
        simclr["primary_score"] in simclr["scores"] and "ood_auroc/other" in simclr["scores"]["knn_distance"]
    )  # digits: other = noise
    assert "epistemic" in simclr["scores"] and simclr["primary_score"] == "knn_distance"  # the head, not the default
    assert simclr["suite_overrides"] == ["data.train_subset=300"]
    assert set(simclr["quantized"]["by_bits"]) == {str(b) for b in claims_report.SCL_BITS}
    assert "style_acc@4d/rotation" in simclr["summary"]
    report = json.loads(out.with_suffix(".json").read_text())["datasets"]["digits"]
    (bits32,) = [c for c in report["claims"] if c["claim"].startswith("SCL: a 32-bit code")]
    assert bits32["numbers"]["simclr:quantized_acc@32bits"] == f"{simclr['summary']['quantized_acc@32bits']:.4f}"
    assert "| digits | simclr | [0] | complete |" in out.with_suffix(".md").read_text()
    before = {p: p.stat().st_mtime_ns for p in records.rglob("*.json")}
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "[claims]" not in again.stdout  # nothing trained or evaluated again
    assert before == {p: p.stat().st_mtime_ns for p in records.rglob("*.json")}


def test_a_head_fitted_after_the_fact_gives_the_scores_of_a_run_trained_with_it(tmp_path):
    """--fit-missing-heads on a record trained without the epistemic head adds the same epistemic numbers as the
    run trained with it (the head changes no weight), marks them, and leaves a record that has them alone."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def suite(name: str, *extra: str) -> Path:
        records = tmp_path / name / "rec"
        cmd = [sys.executable, "benchmarks/claims.py", "--datasets", "digits", "--seeds", "0", "--epochs", "1"]
        cmd += ["--configs", "scl-bits-32", "--style-dim", "4", "--set", "data.train_subset=300", *extra]
        cmd += ["--records", str(records), "--runs", str(tmp_path / name / "runs"), "--out", str(tmp_path / name)]
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        return records / "digits" / "scl-bits-32" / "seed0.json"

    with_head = json.loads(suite("with").read_text())
    path = suite("without", "--set", "method.epistemic=false")
    assert "epistemic" not in json.loads(path.read_text())["scores"]
    suite("without", "--fit-missing-heads")
    after = json.loads(path.read_text())
    assert after["posthoc_scores"]["scores"] == ["epistemic", "combined"]
    for kind in ("epistemic", "combined", after["primary_score"]):
        # 1e-4: the trainer fits the head on its channels-last model, load_run's is contiguous (float rounding of
        # the features moves a rank correlation by ~3e-6)
        assert after["scores"][kind] == pytest.approx(with_head["scores"][kind], abs=1e-4), kind
    written = path.stat().st_mtime_ns
    suite("without", "--fit-missing-heads")  # nothing left to add: the record is not rewritten
    assert path.stat().st_mtime_ns == written


def _table(a, b):
    return {"x": {"k": a}, "y": {"k": b}}


@pytest.mark.parametrize(
    ("a", "b", "margin", "verdict"),
    [
        ({"mean": 0.9, "se": 0.001, "n": 3}, {"mean": 0.8, "se": 0.001, "n": 3}, 0.0, "supported"),
        ({"mean": 0.8, "se": 0.001, "n": 3}, {"mean": 0.9, "se": 0.001, "n": 3}, 0.0, "not supported"),
        ({"mean": 0.81, "se": 0.02, "n": 3}, {"mean": 0.8, "se": 0.02, "n": 3}, 0.0, "supported (within 2 s.e.)"),
        ({"mean": 0.79, "se": 0.001, "n": 3}, {"mean": 0.8, "se": 0.001, "n": 3}, 0.02, "supported"),
        ({"mean": 0.9, "se": None, "n": 1}, {"mean": 0.8, "se": None, "n": 1}, 0.0, "supported (1 seed: no s.e.)"),
        (
            {"mean": 1.0, "se": 0.0, "n": 3},
            {"mean": 1.0, "se": 0.0, "n": 3},
            0.0,
            "tie (equal means to 4 decimals: neither is better)",
        ),
        (
            {"mean": 0.99999, "se": None, "n": 1},
            {"mean": 1.0, "se": None, "n": 1},
            0.0,
            "tie (equal means to 4 decimals: neither is better)",
        ),
        # a margin claim: "within 2 s.e." measures the distance to -margin, not to 0
        ({"mean": 0.781, "se": 0.003, "n": 3}, {"mean": 0.8, "se": 0.003, "n": 3}, 0.02, "supported (within 2 s.e.)"),
        ({"mean": 0.799, "se": 0.003, "n": 3}, {"mean": 0.8, "se": 0.003, "n": 3}, 0.02, "supported"),
        # one side with one seed has no s.e.; three identical seeds have s.e. 0 and are not "1 seed"
        ({"mean": 0.9, "se": 0.01, "n": 3}, {"mean": 0.8, "se": None, "n": 1}, 0.0, "supported (1 seed: no s.e.)"),
        ({"mean": 0.9, "se": 0.0, "n": 3}, {"mean": 0.8, "se": 0.0, "n": 3}, 0.0, "supported"),
    ],
)
def test_verdict_rule(a, b, margin, verdict):
    assert claims_report.compare(_table(a, b), "c", ("x", "k"), ("y", "k"), margin)["verdict"] == verdict


def test_a_missing_side_is_not_measured():
    assert claims_report.compare({"x": {}}, "c", ("x", "k"), ("y", "k"))["verdict"] == "not measured"


def test_a_failed_run_is_reported_and_the_suite_goes_on(tmp_path):
    """SimCLR has no method.latent_dim, so its run fails at the config check; SCL's run after it still records."""
    records = tmp_path / "rec"
    cmd = [sys.executable, "benchmarks/claims.py", "--datasets", "digits", "--seeds", "0", "--epochs", "1"]
    cmd += ["--configs", "simclr", "scl-bernoulli", "--set", "data.train_subset=200", "--set", "method.latent_dim=16"]
    cmd += ["--records", str(records), "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "report")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "[claims] digits simclr seed 0 FAILED" in result.stdout
    assert not (records / "digits" / "simclr").exists()
    rec = json.loads((records / "digits" / "scl-bernoulli" / "seed0.json").read_text())
    assert rec["summary"]["representation_bits"] == 16


def _scores(**by_score):
    """{score: (ood other, ood noise, misclf)} -> a load_table row of mean_se cells."""
    row = {}
    for name, (other, noise, misclf) in by_score.items():
        for key, v in (("ood_auroc/other", other), ("ood_auroc/noise", noise), ("misclf_auroc", misclf)):
            row[f"{name}/{key}"] = {"mean": v, "se": None, "n": 1}
    return row


def test_default_rule_picks_the_models_own_best_worst_case_score():
    tables = {
        "mnist": {
            "simvae": _scores(
                log_det_cov=(0.4, 0.7, 0.6),
                epistemic=(0.99, 1.0, 0.62),
                combined=(1.0, 1.0, 0.65),
                knn_distance=(1.0, 1.0, 0.9),
            ),  # fmt: skip
            "vae": _scores(log_det_cov=(0.8, 0.99, 0.5), epistemic=(0.995, 1.0, 0.7), combined=(1.0, 1.0, 0.6)),
            "scl-gaussian": _scores(
                trace=(0.9, 0.95, 0.5), sigma_mean=(0.905, 0.99, 0.5), log_det_cov=(0.85, 1.0, 0.6)
            ),
        },
        "fashion-mnist": {
            "simvae": _scores(log_det_cov=(0.03, 0.7, 0.6), epistemic=(0.9, 1.0, 0.6), combined=(0.8, 1.0, 0.7))
        },
    }
    metas = {
        d: {c: {"primary_score": "epistemic", "evaluated_with": ["log_det_cov"]} for c in t} for d, t in tables.items()
    }
    rule = claims_report.default_rule(tables, metas)
    simvae = rule["simvae"]
    # worst set: epistemic 0.9 beats combined 0.8 (whose mean is the higher on MNIST); kNN is not the model's own
    assert simvae["rule"] == "epistemic" and simvae["evaluated_with"] == ["log_det_cov"]
    assert simvae["current"] == ["epistemic"]
    assert simvae["scores"]["epistemic"]["ood_by_set"] == {
        "mnist/other": 0.99, "mnist/noise": 1.0, "fashion-mnist/other": 0.9, "fashion-mnist/noise": 1.0
    }  # fmt: skip
    assert simvae["scores"]["log_det_cov"]["min_ood"] == 0.03
    assert rule["vae"]["rule"] == "epistemic"  # worst set 0.995 within 0.01 of combined's 1.0: the single score
    assert rule["scl-gaussian"]["rule"] == "sigma_mean"  # 0.9 and 0.905 tie, no epistemic: the higher mean (0.9475)
    lines = "\n".join(claims_report.default_rule_section(rule))
    assert "| simvae |" in lines and "| scl-gaussian |" in lines
    mean = f"{(0.4 + 0.7 + 0.03 + 0.7) / 4:.3f}"
    row = f"| simvae | log_det_cov | {mean} | 0.030 | 0.600 | epistemic | 0.973 | 0.900 | 0.610 | 1.000 | 1.000 | 0.900 | 4 |"
    assert row + " epistemic |" in lines


def test_posterior_rule_judges_the_posterior_familys_scores_only():
    """The posterior score (no head) is chosen among the family's own scores by the worst-set OOD AUROC; a score
    within TIE_AUROC of the best keeps the current one; the heads' and the evaluation's scores are not candidates."""
    tables = {
        "mnist": {
            "vsupcon": _scores(log_det_cov=(0.08, 1.0, 0.05), angular_spread=(0.73, 0.9, 0.6), epistemic=(1, 1, 1)),
            "vsimclr": _scores(log_det_cov=(0.6, 1.0, 0.4), angular_spread=(0.595, 0.99, 0.3), trace=(0.5, 1, 0.4)),
            "simclr": _scores(knn_distance=(0.99, 1.0, 0.9)),
        },
        "fashion-mnist": {"vsupcon": _scores(log_det_cov=(0.2, 1.0, 0.2), angular_spread=(0.6, 0.95, 0.6))},
    }
    rule = claims_report.posterior_rule(tables)
    assert set(rule) == {"vsupcon", "vsimclr"}  # SimCLR has no posterior
    assert rule["vsupcon"]["current"] == "log_det_cov" and rule["vsupcon"]["rule"] == "angular_spread"
    assert "epistemic" not in rule["vsupcon"]["scores"]  # the head is not the posterior's
    assert rule["vsupcon"]["scores"]["angular_spread"]["min_ood"] == 0.6
    assert rule["vsimclr"]["rule"] == "log_det_cov"  # 0.595 is within 0.01 of 0.6: the current one stays
    lines = "\n".join(claims_report.posterior_rule_section(rule))
    mean = f"{(0.73 + 0.9 + 0.6 + 0.95) / 4:.3f}"
    assert f"| vsupcon (supervised) | log_det_cov | 0.570 | 0.080 | 0.125 | angular_spread | {mean} | 0.600 |" in lines


def test_the_report_reads_every_record_with_the_librarys_default_now():
    """A record keeps the default it was evaluated with; the report's default columns use this probssl's."""
    assert claims_report.library_default("simclr", "mnist") == "knn_distance"
    assert claims_report.library_default("vsimclr", "fashion-mnist") == "epistemic"
    for label in ("scl-bernoulli", "scl-gaussian", "simvae", "vae", "beta-vae", "cr-vae", "scl-bits-32"):
        assert claims_report.library_default(label, "digits") == "epistemic", label
    rec = {"config": "simvae", "dataset": "mnist", "summary": {}, "primary_score": "log_det_cov"}
    rec["scores"] = {"log_det_cov": {"ood_auroc/other": 0.03}, "epistemic": {"ood_auroc/other": 0.99}}
    assert claims_report.flat_numbers(rec)["default/ood_auroc/other"] == 0.99
    assert claims_report.flat_numbers(rec)["posterior/ood_auroc/other"] == 0.03  # the posterior's own score, no head


def test_the_posterior_score_is_the_methods_own_without_the_head():
    assert claims_report.library_posterior("vsimclr", "mnist") == "log_det_cov"  # VCL's log det K
    assert claims_report.library_posterior("scl-bernoulli", "mnist") == "bit_entropy"
    assert claims_report.library_posterior("scl-gaussian", "mnist") == "trace"
    assert claims_report.library_posterior("simclr", "mnist") is None  # deterministic: no posterior score


def test_the_default_and_the_posterior_score_share_one_build_of_the_method():
    import uncertainty

    uncertainty._built.cache_clear()
    claims_report.library_default("simvae", "digits")
    claims_report.library_posterior("simvae", "digits")
    info = uncertainty._built.cache_info()
    assert (info.misses, info.hits) == (1, 1)


def test_the_report_module_does_not_import_the_suite():
    """claims.py imports claims_report, never the reverse."""
    code = "import sys; sys.path.insert(0, 'benchmarks'); import claims_report; assert 'claims' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True).returncode == 0


def test_a_report_for_one_dataset_keeps_the_other_datasets_records(tmp_path, capsys):
    """Two suite processes (--datasets mnist, --datasets fashion-mnist) both rewrite the report: each keeps the
    other's section and completeness rows, because the records, not the command line, say what exists."""
    committed = ROOT / "benchmarks" / "results" / "claims" / "mnist" / "simclr" / "seed0.json"
    records = tmp_path / "rec"
    (records / "mnist" / "simclr").mkdir(parents=True)
    (records / "mnist" / "simclr" / "seed0.json").write_text(committed.read_text())
    out = tmp_path / "report"
    args = ["--report-only", "--datasets", "fashion-mnist", "--configs", "simclr"]
    assert claims.main([*args, "--records", str(records), "--out", str(out)]) == 0
    text = out.with_suffix(".md").read_text()
    assert "## mnist" in text and "| mnist | simclr | [0] | missing seeds [1, 2] |" in text
    assert "| fashion-mnist | simclr | [] | missing seeds [0, 1, 2] |" in text
    assert set(json.loads(out.with_suffix(".json").read_text())["datasets"]) == {"mnist"}
    assert not list(tmp_path.glob(".*partial"))  # written in one step, nothing left behind


def test_the_docs_tables_are_the_committed_records(tmp_path):
    """docs/benchmarks.md's generated block equals what the committed records give: a record committed without
    `claims.py --report-only --docs docs/benchmarks.md` (or a hand edit of a number) fails here."""
    page = ROOT / "docs" / "benchmarks.md"
    copy = tmp_path / "benchmarks.md"
    copy.write_text(page.read_text())
    assert claims.main(["--report-only", "--docs", str(copy), "--out", str(tmp_path / "report")]) == 0
    assert copy.read_text() == page.read_text(), (
        "run: python benchmarks/claims.py --report-only --docs docs/benchmarks.md"
    )


def test_the_docs_block_needs_its_markers(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# no markers\n")
    with pytest.raises(SystemExit, match="no generated block"):
        claims_docs.rewrite(page, [claims_docs.BEGIN, claims_docs.END])
    page.write_text(f"before\n{claims_docs.BEGIN}\nold\n{claims_docs.END}\nafter\n")
    claims_docs.rewrite(page, [claims_docs.BEGIN, "new", claims_docs.END])
    assert page.read_text() == f"before\n{claims_docs.BEGIN}\nnew\n{claims_docs.END}\nafter\n"


def test_docs_numbers_carry_their_standard_error():
    assert claims_docs.number(None, 3) == "–"
    assert claims_docs.number(mean_se([0.5]), 3) == "0.500"
    assert claims_docs.number(mean_se([0.5, 0.7]), 3) == "0.600 ± 0.100"


def test_a_deterministic_methods_knn_default_is_a_candidate_and_wins_ties():
    """SimCLR's default, the kNN distance, competes with the head's epistemic score: the better worst set wins,
    a tie keeps the current default."""
    better = {"mnist": {"simclr": _scores(knn_distance=(0.92, 0.87, 0.7), epistemic=(0.95, 1.0, 0.6))}}
    tie = {"mnist": {"simclr": _scores(knn_distance=(0.99, 1.0, 0.9), epistemic=(0.995, 1.0, 0.6))}}
    for tables, expected in ((better, "epistemic"), (tie, "knn_distance")):
        metas = {"mnist": {"simclr": {"primary_score": "knn_distance", "evaluated_with": ["knn_distance"]}}}
        assert claims_report.default_rule(tables, metas)["simclr"]["rule"] == expected
    assert claims_report.CONFIGS["simclr"][1] == claims_report.EPISTEMIC  # the suite's SimCLR carries the head ...
    assert claims_report.library_default("simclr", "mnist") == "knn_distance"  # ... and its users' default is still kNN


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_every_two_epoch_claim_has_its_counterpart_here(dataset):
    """The docs' "what changed" table pairs each committed 2-epoch claim with a claim this suite makes: none is
    dropped (a renamed claim on either side fails here)."""
    before = claims_report.two_epoch_claims(ROOT / "benchmarks" / "results", [dataset])[dataset]
    pairs = claims_report.two_epoch_counterparts(dataset)
    scl = {"scl-bernoulli": {"compression_ratio": {"mean": 49.0}}}
    style = {"simvae": {f"style_acc@10d/{t}": None for t in claims_report.STYLE_TASKS}}  # the probes a record carries
    made = {
        c["claim"]
        for c in claims_report.vcl_claims({}) + claims_report.scl_claims(scl) + claims_report.simvae_claims(style, 10)
    }
    assert len(before) == 19
    for c in before:
        assert pairs.get(c["claim"]) in made, c["claim"]
