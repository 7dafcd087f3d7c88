"""The paper-protocol presets (issue 15, part 2): every one validates, every value line names its source, the
derived values follow from their sources, and benchmarks/paper_protocols.py --quick builds and steps them (on the
real set when it is on disk, synthetic images otherwise) with their peak memory and projected protocol time;
``--quick --tiny`` (synthetic data, 16 px where the network allows it) builds and steps every one of them in CI.

Annotation rule (strict, on the YAML text): apart from comment lines, blank lines and top-level section lines
(``data:``), every line is ``  key: value  # comment`` and the comment names a source from SOURCES, or says
"our choice" followed by its reason. A preset's header comment explains the sources; this test only checks the tag.
"""

import hashlib
import io
import json
import os
import pickle
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from probssl.config import list_presets, load_config, load_preset
from probssl.data import list_datasets, sources
from probssl.methods.scl import compression_ratio
from probssl.models import create_backbone

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from paper_protocols import (  # noqa: E402
    NATIVE_SHAPES,
    OFFICIAL_TRAIN_SIZES,
    PAPER_PRESETS,
    SIZE_BOUND_BACKBONES,
    TINY_SIDE,
    image_shape,
    official_train_images,
    preset_data,
    protocol_steps,
    tiny_image_size,
)

SOURCES = (
    "VCL reviewers",  # the OpenReview reviews of VCL's ICLR 2026 submission
    "VCL paper",  # Jeong, Kim, Hero 2025 (its datasets)
    "SimCLR paper",  # Chen et al. 2020
    "SimCLR code",  # github.com/google-research/simclr (README commands, run.py / model_util.py)
    "SCL paper",  # Ramapuram, Busbridge, Suau, Webb 2021
    "SimVAE paper",  # Bizeul et al. 2024
    "SimVAE code",  # github.com/alicebizeul/simvae
    "beta-VAE paper",  # Higgins et al. 2017
    "CR-VAE paper",  # Sinha & Dieng 2021
    "MoCo v2 paper",  # Chen, Fan, Girshick, He 2020, arXiv 2003.04297
    "MoCo code",  # github.com/facebookresearch/moco (main_moco.py, moco/builder.py, colab/moco_cifar10_demo.ipynb)
)
VALUE_LINE = re.compile(r"^  [a-z_]+: \S.*?\s+# (?P<comment>.+)$")
SECTION_LINE = re.compile(r"^[a-z]+:$")
OUR_CHOICE = re.compile(r"our choice\S*\s*(--|:|,|;)?\s*\S+")


def _text(name: str) -> str:
    return (ROOT / "probssl" / "presets" / f"{name}.yaml").read_text()


def test_the_issue_list_of_paper_presets_exists():
    vcl = [f"{m}-{d}" for m in ("simclr", "vsimclr", "supcon", "vsupcon") for d in ("cifar10", "cifar100", "stl10")]
    vcl += [f"{m}-tiny-imagenet" for m in ("simclr", "vsimclr", "supcon", "vsupcon")]
    scl = [f"scl-{k}-{d}" for k in ("gaussian", "bernoulli") for d in ("cifar10", "imagenet")]
    simvae = [f"{m}-{d}" for m in ("simvae", "vae", "beta-vae", "cr-vae") for d in ("cifar10", "celeba")]
    moco = ["moco-cifar10", "moco-cifar100", "moco-stl10", "moco-tiny-imagenet"]  # every dataset SimCLR has
    assert sorted(PAPER_PRESETS) == sorted(vcl + scl + simvae + moco)
    assert set(PAPER_PRESETS) <= set(list_presets())


@pytest.mark.parametrize("name", PAPER_PRESETS)
def test_every_value_line_names_its_source(name):
    text = _text(name)
    assert text.startswith("# "), f"{name}: the header comment (what the preset reproduces, its sources) is missing"
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#") or SECTION_LINE.match(line):
            continue
        match = VALUE_LINE.match(line)
        assert match, f"{name}.yaml:{number}: not `  key: value  # source`: {line!r}"
        comment = match["comment"]
        sourced = any(source in comment for source in SOURCES)
        assert sourced or OUR_CHOICE.search(comment), f"{name}.yaml:{number}: comment names no source: {comment!r}"
        if "our choice" in comment:
            assert OUR_CHOICE.search(comment), f"{name}.yaml:{number}: 'our choice' without its reason: {comment!r}"


def test_the_rule_rejects_unsourced_lines():
    # The rule above must be able to fail: a bare value and a comment without a source do not pass it.
    assert not VALUE_LINE.match("  lr: 0.001")
    comment = VALUE_LINE.match("  lr: 0.001  # tuned")["comment"]
    assert not any(s in comment for s in SOURCES) and not OUR_CHOICE.search(comment)
    assert not OUR_CHOICE.search("our choice")


@pytest.mark.parametrize("name", PAPER_PRESETS)
def test_every_paper_preset_validates(name):
    dataset = yaml.safe_load(_text(name))["data"]["name"]
    assert dataset in NATIVE_SHAPES, f"{name}: add {dataset}'s image shape to paper_protocols.NATIVE_SHAPES"
    if dataset not in list_datasets():
        pytest.fail(f"{name}: dataset {dataset!r} is not registered yet (issue 15 part 1)")
    config = load_preset(name)
    assert config.method.name in name


def test_derived_values_follow_from_their_sources():
    for latent in ("gaussian", "bernoulli"):
        imagenet = yaml.safe_load(_text(f"scl-{latent}-imagenet"))
        t = imagenet["train"]
        assert t["lr"] == pytest.approx(0.3 * t["batch_size"] / 256)  # SimCLR: 0.3 x BatchSize / 256
        assert imagenet["data"]["image_size"] == 224
        cifar = yaml.safe_load(_text(f"scl-{latent}-cifar10"))["train"]
        assert cifar["lr"] == pytest.approx(1.0 * cifar["batch_size"] / 256)  # README: 1.0, linear scaling
    code = yaml.safe_load(_text("scl-bernoulli-imagenet"))["method"]["latent_dim"]
    assert round(compression_ratio((3, 224, 224), code)) == 588  # the paper's 588x
    # SimVAE's reference sums its loss over 128 views with Adam eps 1e-4: eps / 64 per image, / 128 per view.
    for name, per in (("simvae-cifar10", 64), ("cr-vae-cifar10", 64), ("vae-cifar10", 128), ("beta-vae-celeba", 128)):
        t = yaml.safe_load(_text(name))["train"]
        assert t["adam_eps"] == pytest.approx(1e-4 / per) and 2 * t["batch_size"] == 128


def test_moco_presets_are_their_simclr_presets_with_moco_v2():
    # "built like the matching simclr-* preset": same data, augmentation, backbone, head and training budget; only
    # the method differs, with MoCo v2's temperature and a queue smaller than the training set.
    for dataset in ("cifar10", "cifar100", "stl10", "tiny-imagenet"):
        moco, simclr = load_preset(f"moco-{dataset}").to_dict(), load_preset(f"simclr-{dataset}").to_dict()
        for section in ("data", "augment", "model", "train"):
            assert moco[section] == simclr[section], f"moco-{dataset}: {section} differs from simclr-{dataset}"
        method = load_preset(f"moco-{dataset}").method
        assert method.name == "moco" and method.temperature == 0.2 and not method.symmetric
        n_train = official_train_images(load_preset(f"moco-{dataset}").data)
        assert method.queue_size < n_train, f"moco-{dataset}: a queue of {method.queue_size} >= {n_train} images"
        assert method.queue_size % 512 == 0 and method.momentum == 0.99


def test_protocol_sizes_follow_the_official_splits_and_the_readers_rules():
    stl10 = load_config("simclr-stl10").data
    assert official_train_images(stl10) == 4_500  # 5,000 labelled less the 10% validation carve
    assert official_train_images(load_config("simclr-stl10", overrides=["data.val_fraction=0.2"]).data) == 4_000
    assert official_train_images(load_config("simclr-stl10", overrides=["data.train_subset=1000"]).data) == 1_000
    assert official_train_images(load_config("simclr-cifar100").data) == 45_000
    # CelebA uses its official validation partition: no carve, the unfiltered train partition
    celeba = load_config("simvae-celeba", overrides=["data.val_fraction=0.5"]).data
    assert official_train_images(celeba) == 162_770
    assert official_train_images(load_config("scl-gaussian-imagenet").data) == 1_281_167 - 128_117
    train = load_config("simclr-cifar10").train  # 500 epochs at batch 512
    assert protocol_steps(train, 45_000) == 500 * 87
    capped = load_config("simclr-cifar10", overrides=["train.max_steps=100"]).train
    assert protocol_steps(capped, 45_000) == 100
    for name in PAPER_PRESETS:  # every dataset a preset names has an official size for the projection
        assert load_preset(name).data.name in OFFICIAL_TRAIN_SIZES, name


def _write_cifar10(root: Path, monkeypatch, per_batch: int = 20) -> None:
    """A CIFAR-10 archive in the official layout (5 train batches + test, pickled dicts), its MD5 registered."""
    rng = np.random.default_rng(0)
    members = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        members[f"cifar-10-batches-py/{name}"] = pickle.dumps({b"data": data, b"labels": labels}, protocol=2)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps({b"label_names": names}, protocol=2)
    path = root / "cifar10" / "cifar-10-python.tar.gz"
    path.parent.mkdir(parents=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    monkeypatch.setitem(sources.CHECKSUMS, "cifar10/cifar-10-python.tar.gz", hashlib.md5(path.read_bytes()).hexdigest())


def test_quick_uses_the_real_set_when_it_is_on_disk(tmp_path, monkeypatch):
    overrides = [f"data.data_dir={tmp_path}", "data.download=false"]
    config = load_config("simclr-cifar10", overrides=overrides)
    splits, source, n_train = preset_data(config, 8)  # nothing on disk: synthetic, the official size
    assert source == "synthetic" and n_train == 45_000 and splits.image_shape == (3, 32, 32)
    _write_cifar10(tmp_path, monkeypatch)
    splits, source, n_train = preset_data(config, 8)
    assert source == "real" and n_train == 90  # the real train split: 100 images less the 10% carve
    assert len(splits.train) == 8 and splits.train.name == "cifar10" and splits.image_shape == (3, 32, 32)


def _run_quick(tmp_path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    """Run ``paper_protocols.py --quick ARGS`` on one CPU thread with no real set on disk: (result, rows by preset)."""
    out = tmp_path / "rows.json"
    cmd = [sys.executable, "benchmarks/paper_protocols.py", "--quick", "--json", str(out), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PROBSSL_DATA": str(tmp_path / "data")}  # no real set: synthetic
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result, {r["preset"]: r for r in json.loads(out.read_text())}


def test_quick_tiny_builds_and_steps_every_preset(tmp_path):
    # Issue 15 part 4: the --quick pass in CI at tiny sizes on the CPU. Every preset builds its own method, backbone,
    # head, optimiser, augmentation and decoder and takes a warm-up + a timed step with finite losses (~30 s).
    result, rows = _run_quick(tmp_path, "--tiny")
    assert list(rows) == list(PAPER_PRESETS)
    for name, row in rows.items():
        preset = load_preset(name)
        assert row["status"] == "ok (2 steps, tiny)" and row["tiny"] and row["data"] == "synthetic", name
        assert len(row["losses"]) == 2 and all(np.isfinite(row["losses"])), name
        assert row["step_s"] > 0 and np.isfinite(row["img_s"]) and row["img_s"] > 0, name
        assert row["projected_s"] is None and row["params"] > 1e6 and row["peak_mb"] >= 0, name
        assert (row["method"], row["backbone"]) == (preset.method.name, preset.model.backbone), name
        native = list(image_shape(preset))
        shrunk = preset.model.backbone not in SIZE_BOUND_BACKBONES
        assert row["shape"] == ([3, TINY_SIDE, TINY_SIDE] if shrunk else native), name
        assert row["protocol_steps"] == protocol_steps(preset.train, official_train_images(preset.data)), name
    assert rows["simvae-celeba"]["shape"] == [3, 64, 64] and rows["simvae-cifar10"]["shape"] == [3, 32, 32]
    for text in ("- (tiny)", "TINY: synthetic data", "no projection", "1 torch thread(s)"):
        assert text in result.stdout, text


def test_tiny_sizes_keep_every_shrunk_network_unchanged():
    # Shrinking the image must not change what is built: each backbone --tiny shrinks has the same parameters and
    # feature width at TINY_SIDE as at its preset's own size; SimVAE's encoder does not, so its presets keep theirs.
    configs = [load_preset(name) for name in PAPER_PRESETS]
    shrunk = {(c.model.backbone, image_shape(c)[1]) for c in configs if tiny_image_size(c) is not None}
    assert {backbone for backbone, _ in shrunk} == {
        "resnet18-cifar",
        "resnet18-imagenet",
        "resnet50-cifar",
        "resnet50-imagenet",
    }
    for backbone, side in shrunk:
        native, tiny = create_backbone(backbone, 3, side), create_backbone(backbone, 3, TINY_SIDE)
        count = [sum(p.numel() for p in net.parameters()) for net in (native, tiny)]
        assert count[0] == count[1] and native.feature_dim == tiny.feature_dim, (backbone, side)
    assert (
        create_backbone("simvae-resnet18", 3, 32).feature_dim != create_backbone("simvae-resnet18", 3, 16).feature_dim
    )
    assert all(tiny_image_size(load_preset(n)) is None for n in PAPER_PRESETS if "vae" in n)


def test_quick_benchmark_steps_at_the_presets_own_shape_and_projects(tmp_path):
    # What --tiny leaves out: the presets' own image sizes (STL-10's 96 px; ImageNet's 224 px built) and the
    # projected protocol time (2 tiny steps each: a warm-up + a timed one). The ResNet-50 / 224 px presets take
    # seconds to tens of seconds a step on 2 CPU cores, so that one is only built (model + optimiser) here.
    stepped = ["vsimclr-cifar10", "supcon-stl10"]
    built = ["scl-gaussian-imagenet"] if "imagenet" in list_datasets() else []
    result, rows = _run_quick(
        tmp_path, "--batch", "2", "--only", *stepped, *(["--build-only", *built] if built else [])
    )
    assert set(rows) == set(stepped + built)
    for name in stepped:
        row = rows[name]
        assert row["status"] == "ok (2 steps)" and len(row["losses"]) == 2 and row["data"] == "synthetic"
        assert row["step_s"] > 0 and row["params"] > 1e6 and row["peak_mb"] > 0 and not row["tiny"]
        preset = load_preset(name).train
        assert row["protocol_steps"] == protocol_steps(preset, row["train_images"])
        # linear scaling from the measured batch (2) to the preset's, times the protocol's steps
        assert row["projected_s"] == pytest.approx(row["step_s"] * preset.batch_size / 2 * row["protocol_steps"])
    assert rows["vsimclr-cifar10"]["train_images"] == 45_000 and rows["vsimclr-cifar10"]["protocol_steps"] == 43_500
    assert rows["supcon-stl10"]["shape"] == [3, 96, 96] and rows["vsimclr-cifar10"]["shape"] == [3, 32, 32]
    for name in built:
        assert rows[name]["status"] == "built" and rows[name]["losses"] == [] and rows[name]["params"] > 2e7
        assert rows[name]["projected_s"] is None and rows[name]["protocol_steps"] > 0
        assert rows[name]["shape"] == [3, 224, 224]
    for text in ("vsimclr-cifar10", "img/s", "peak MB (CPU", "projected", "linear scaling", "synthetic"):
        assert text in result.stdout, text
    assert "TINY" not in result.stdout and "- (tiny)" not in result.stdout


def test_quick_benchmark_refuses_unknown_names():
    cmd = [sys.executable, "benchmarks/paper_protocols.py", "--quick", "--only", "simclr-cifar11"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "unknown paper preset(s) simclr-cifar11" in result.stderr
    assert "Traceback" not in result.stderr


def test_quick_benchmark_needs_a_timed_step():
    cmd = [sys.executable, "benchmarks/paper_protocols.py", "--quick", "--steps", "1"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--steps >= 2" in result.stderr and "Traceback" not in result.stderr
