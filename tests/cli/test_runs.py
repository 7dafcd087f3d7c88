"""`probssl runs` and `probssl report` mark an evaluation stale by the run's latest checkpoint (issue #14)."""

import json
import shutil

import pytest

from probssl.cli.main import main

# 4 steps of 64 images per epoch, a checkpoint at the end of each: step-00000004 and step-00000008
SMALL = ["train.epochs=2", "data.train_subset=256", "train.batch_size=64", "train.progress=false"]


@pytest.fixture(scope="module")
def trained_and_evaluated_early(tmp_path_factory):
    """A real 8-step run whose eval.json is of its step-4 checkpoint (trained and evaluated once per module)."""
    run = tmp_path_factory.mktemp("runs") / "run"
    assert (
        main(["train", "--preset", "simclr-digits", "--out", str(run), *[a for s in SMALL for a in ("--set", s)]]) == 0
    )
    assert main(["eval", str(run), "--checkpoint", "step-4", "--quick"]) == 0
    return run


@pytest.fixture
def evaluated_early(trained_and_evaluated_early, tmp_path):
    """(root, run): a copy of that run each test may edit."""
    root = tmp_path / "root"
    shutil.copytree(trained_and_evaluated_early, root / "run")
    return root, root / "run"


def _runs_row(capsys, root, run) -> str:
    capsys.readouterr()
    assert main(["runs", str(root)]) == 0
    return next(line for line in capsys.readouterr().out.splitlines() if line.startswith(str(run)))


def _report(capsys, run, out) -> str:
    assert main(["report", str(run), "--out", str(out)]) == 0
    capsys.readouterr()
    return (out / "report.md").read_text()


def _set_eval_step(run, step):
    m = json.loads((run / "eval.json").read_text())
    m["run"]["step"] = m["step"] = step
    (run / "eval.json").write_text(json.dumps(m))


def test_an_evaluation_older_than_the_latest_checkpoint_is_stale(evaluated_early, capsys, tmp_path):
    root, run = evaluated_early
    assert json.loads((run / "eval.json").read_text())["run"]["step"] == 4
    assert "(stale: step 4, trained to 8)" in _runs_row(capsys, root, run)
    assert "**stale**: evaluated at step 4, trained to 8" in _report(capsys, run, tmp_path / "rep")


def test_an_evaluation_of_the_latest_checkpoint_is_not_stale(evaluated_early, capsys, tmp_path):
    root, run = evaluated_early
    _set_eval_step(run, 8)
    assert "stale" not in _runs_row(capsys, root, run)
    assert "stale" not in _report(capsys, run, tmp_path / "rep")
    # a running run past its latest checkpoint: there is nothing newer to evaluate, so still not stale
    status = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps({**status, "step": 11}))
    assert "stale" not in _runs_row(capsys, root, run)
    assert "stale" not in _report(capsys, run, tmp_path / "rep2")


def test_without_checkpoints_the_status_step_decides(evaluated_early, capsys, tmp_path):
    root, run = evaluated_early
    _set_eval_step(run, 8)
    shutil.rmtree(run / "checkpoints")
    status = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps({**status, "step": 12}))
    assert "(stale: step 8, trained to 12)" in _runs_row(capsys, root, run)
    (run / "status.json").write_text(json.dumps(status))
    assert "stale" not in _runs_row(capsys, root, run)
