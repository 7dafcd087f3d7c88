"""The documentation's tutorials (docs/tutorials/*.py) run as written, on tiny budgets, and their outputs are
sane: each runs in its own process, as a reader would run it, and the files and numbers it writes are checked."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

TUTORIALS = Path(__file__).resolve().parents[1] / "docs" / "tutorials"


def run_tutorial(name: str, out: Path, steps: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(TUTORIALS / name), "--out", str(out), "--steps", str(steps)],
        cwd=out.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {"stdout": result.stdout}


def test_every_tutorial_is_tested_and_on_a_page():
    scripts = sorted(p.name for p in TUTORIALS.glob("*.py"))
    tested = {"train_on_folder.py", "screen_by_uncertainty.py", "scl_bits.py"}
    assert set(scripts) == tested, f"untested or missing tutorials: {set(scripts) ^ tested}"
    for script in scripts:  # each page shows its script through a snippet include
        page = TUTORIALS / script.replace(".py", ".md").replace("_", "-")
        assert f'--8<-- "docs/tutorials/{script}"' in page.read_text(), page


@pytest.mark.slow
def test_train_on_folder(tmp_path):
    out = tmp_path / "folder"
    run_tutorial("train_on_folder.py", out, steps=30)
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(p.name for p in (out / "images" / "train").iterdir()) == ["disc", "hstripes", "vstripes"]
    assert summary["image_shape"] == [3, 16, 16]
    assert summary["splits"] == {"train": 96, "val": 24, "test": 60}
    # Three visually distinct classes: well above chance (1/3) even after 30 steps.
    assert summary["linear_acc"] > 0.6, summary
    assert 0.0 <= summary["ood_auroc_noise"] <= 1.0
    rows = np.load(out / "test-embeddings.npz")
    assert rows["representation"].shape == (60, summary["representation_dim"])
    assert np.isfinite(rows["representation"]).all()
    assert (out / "run" / "eval.json").exists()


@pytest.mark.slow
def test_screen_by_uncertainty(tmp_path):
    out = tmp_path / "screen"
    run_tutorial("screen_by_uncertainty.py", out, steps=40)
    result = json.loads((out / "screening.json").read_text())
    assert result["default_score"] == "epistemic"  # VSimCLR's evidence-chosen default (docs/uncertainty.md)
    default = "default (epistemic)"
    # Uniform noise is far from the digits' feature density: the default score must separate it.
    assert result["auroc"][default]["noise"] > 0.9, result
    for row in result["auroc"].values():
        assert all(0.0 <= v <= 1.0 for v in row.values())
    screen = result["screen"]
    assert 0.85 <= screen["test_kept"] <= 1.0, screen  # threshold at the validation split's 95th percentile
    assert screen["noise_rejected"] > 0.8, screen


@pytest.mark.slow
def test_scl_bits(tmp_path):
    out = tmp_path / "scl"
    run_tutorial("scl_bits.py", out, steps=30)
    result = json.loads((out / "compression.json").read_text())
    assert result["representation"] == "bits"
    assert result["representation_bits"] == 64  # the preset's latent_dim
    assert result["input_bits"] == 8 * 8 * 1 * 8
    assert result["compression_ratio"] == pytest.approx(8.0)
    assert result["bytes_per_image"] == 8
    assert result["linear_acc"] > 0.3, result  # 10 classes: chance is ~0.1
    assert (out / "codes.bin").stat().st_size == result["images"] * 8
    assert result["uncertainty_score"] == "epistemic"  # SCL's default since the 20-epoch suite
    assert result["mean_uncertainty"] > 0.0  # a squared Mahalanobis distance
