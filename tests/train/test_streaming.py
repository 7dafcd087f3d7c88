"""Data larger than memory: a folder streamed from its files trains exactly like the same folder in memory."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from probssl.config import from_dict
from probssl.data import DataError, load_dataset, load_splits
from probssl.data.lazy import LazyImages, choose_in_memory, is_lazy
from probssl.data.registry import clear_cache
from probssl.train import Trainer, latest_checkpoint, load_run


def write_folder(root: Path, n_per_class: int = 24, size: int = 12, fmt: str = "png") -> Path:
    """Two classes of RGB images of mixed sizes around ``size`` (so data.image_size resizes them), test 4 each."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_per_class), ("test", 4)):
        for label, cls in enumerate(("a", "b")):
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                h, w = size + int(rng.integers(0, 5)), size + int(rng.integers(0, 5))
                base = rng.integers(0, 120, (h, w, 3)) + 100 * label
                Image.fromarray(base.astype(np.uint8)).save(root / split / cls / f"{i:03d}.{fmt}")
    return root


def folder_config(root: Path, in_memory, workers: int | None = 2, **train) -> dict:
    return {
        "method": {"name": "simclr"},
        "model": {"backbone": "convnet", "width": 0.25},
        "data": {
            "name": "folder",
            "data_dir": str(root),
            "image_size": 10,
            "in_memory": in_memory,
            "loader_workers": workers,
            "val_fraction": 0.1,
        },
        "augment": {"recipe": "simclr"},
        "train": {
            "epochs": 2,
            "batch_size": 8,
            "progress": False,
            "log_every": 1,
            "deterministic": True,
            "monitor_every": 0,
            "num_threads": 1,
            **train,
        },
    }


@pytest.fixture
def folder(tmp_path):
    clear_cache()
    yield write_folder(tmp_path / "images")
    clear_cache()


def test_lazy_images_decode_exactly_the_in_memory_pixels(folder):
    memory = load_dataset("folder", folder, image_size=10, in_memory=True, val_fraction=0.0)
    clear_cache()
    lazy = load_dataset("folder", folder, image_size=10, in_memory=False, val_fraction=0.0)
    images, eager = lazy.train.images, memory.train.images
    assert is_lazy(images) and not is_lazy(eager)
    assert images.shape == eager.shape and len(images) == 48 and images.dtype == torch.uint8
    assert torch.equal(images[:], eager) and torch.equal(images[5], eager[5])
    rows = torch.tensor([7, 0, 31, 7])
    assert torch.equal(images[rows], eager[rows]) and torch.equal(images[3:40:6], eager[3:40:6])
    mask = torch.arange(48) % 5 == 0
    assert torch.equal(images[mask], eager[mask])
    taken = images.take(rows)
    assert is_lazy(taken) and torch.equal(taken[:], eager[rows])
    again = pickle.loads(pickle.dumps(images))  # what a DataLoader worker receives
    assert torch.equal(again[10:14], eager[10:14])
    assert torch.equal(lazy.test.images[:], memory.test.images)  # every split streams alike
    with pytest.raises(IndexError):
        images[torch.tensor([48])]


def test_a_file_changed_since_the_scan_is_named(folder):
    lazy = load_dataset("folder", folder, in_memory=False, image_size=10, val_fraction=0.0)
    bad = LazyImages(lazy.train.images.paths, (3, 11, 10), lazy.train.images.decode)
    with pytest.raises(DataError, match=r"000\.png decoded to uint8 \(10, 10, 3\), not uint8 \(11, 10, 3\)"):
        bad[0]


def test_in_memory_choice_by_the_memory_budget(monkeypatch):
    monkeypatch.setattr("probssl.data.lazy.available_memory", lambda: 10 * 2**30)
    assert choose_in_memory("auto", 4 * 2**30, "root").in_memory
    streamed = choose_in_memory("auto", 6 * 2**30, "root")
    assert not streamed.in_memory and "streamed" in streamed.reason
    assert not choose_in_memory(False, 1, "root").in_memory
    assert choose_in_memory(True, 7 * 2**30, "root").in_memory
    with pytest.raises(DataError, match="data.in_memory=auto"):
        choose_in_memory(True, 9 * 2**30, "root")
    monkeypatch.setattr("probssl.data.lazy.available_memory", lambda: None)
    assert choose_in_memory("auto", 10**15, "root").in_memory  # nothing to compare with: as before


def test_auto_streams_a_folder_too_large_for_the_memory(folder, monkeypatch):
    monkeypatch.setattr("probssl.data.lazy.available_memory", lambda: 10_000)  # 48+8 RGB 10x10 = 16,800 bytes
    splits = load_splits(from_dict(folder_config(folder, "auto")))
    assert is_lazy(splits.train.images) and is_lazy(splits.test.images)


def _train(config: dict, run_dir: Path):
    trainer = Trainer(from_dict(config), run_dir, echo=lambda _m: None)
    method = trainer.fit()
    losses = [r["loss"] for r in trainer.log.read() if "loss" in r]
    return trainer, method, losses


@pytest.mark.parametrize("workers", [2, 0])
def test_streamed_training_equals_in_memory_training(folder, tmp_path, workers):
    _, eager, eager_losses = _train(folder_config(folder, True), tmp_path / "memory")
    clear_cache()
    trainer, streamed, streamed_losses = _train(folder_config(folder, False, workers), tmp_path / "streamed")
    assert is_lazy(trainer.images) and trainer.runtime_record()["data"].startswith("streamed")
    assert len(eager_losses) == trainer.total_steps == 10 and streamed_losses == eager_losses
    for (name, a), b in zip(eager.state_dict().items(), streamed.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_run_stopping_mid_epoch_shuts_its_loader_down(folder, tmp_path):
    import multiprocessing

    _train(folder_config(folder, False, 2, max_steps=3), tmp_path / "short")
    deadline = time.time() + 10
    while multiprocessing.active_children() and time.time() < deadline:
        time.sleep(0.05)
    assert not multiprocessing.active_children()


def _cli(folder: Path, out: Path, *extra: str) -> list[str]:
    sets = [
        "method.name=simclr",
        "model.backbone=convnet",
        "model.width=0.25",
        "data.name=folder",
        f"data.data_dir={folder}",
        "data.image_size=10",
        "data.in_memory=false",
        "data.loader_workers=2",
        "train.epochs=12",
        "train.batch_size=8",
        "train.checkpoint_every_steps=2",
        "train.log_every=1",
        "train.deterministic=true",
        "train.progress=false",
        "train.num_threads=1",
        "train.monitor_every=0",
    ]
    args = [a for s in sets for a in ("--set", s)]
    return [sys.executable, "-m", "probssl", "train", *args, "--out", str(out), *extra]


def test_streamed_run_resumes_bit_identically_after_sigkill(folder, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(_cli(folder, tmp_path / "full"), check=True, env=env, capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cli(folder, killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        ckpt = latest_checkpoint(killed / "checkpoints")
        if ckpt is not None and int(ckpt.name.split("-")[1]) >= 12:  # mid-epoch: 5 steps per epoch
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads((killed / "status.json").read_text())["status"] == "running", "finished before the kill"
    subprocess.run(_cli(folder, killed, "--resume", "auto"), check=True, env=env, capture_output=True)
    _, full, s_full = load_run(tmp_path / "full")
    _, resumed, s_resumed = load_run(killed)
    assert s_full.step == s_resumed.step == 60
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    losses = [
        [json.loads(x)["loss"] for x in (run / "metrics.jsonl").read_text().splitlines()]
        for run in (tmp_path / "full", killed)
    ]
    assert losses[0] == losses[1]


def test_a_streamed_run_evaluates(folder, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = tmp_path / "run"
    subprocess.run(_cli(folder, run, "--set", "train.max_steps=4"), check=True, env=env, capture_output=True)
    result = subprocess.run(
        [sys.executable, "-m", "probssl", "eval", str(run), "--quick"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run / "eval.json").read_text())
    assert metrics["streamed_data"] == {"streamed": True, "train_images": 43, "train_images_evaluated": 43}
    assert 0 <= metrics["linear_acc"] <= 1


def test_evaluation_decodes_a_stratified_train_subset_within_the_budget(folder):
    from probssl.data.resident import resident_splits

    splits = load_dataset("folder", folder, image_size=10, in_memory=False, val_fraction=0.0)
    per_image = 3 * 10 * 10
    resident, record = resident_splits(splits, budget_bytes=per_image * (8 + 20))  # test 8 + 20 train images
    assert record == {"streamed": True, "train_images": 48, "train_images_evaluated": 20}
    assert not any(is_lazy(s.images) for s in (resident.train, resident.val, resident.test))
    assert torch.bincount(resident.train.labels).tolist() == [10, 10]
    assert torch.equal(resident.test.images, splits.test.images[:])
    with pytest.raises(DataError, match="validation and test splits"):
        resident_splits(splits, budget_bytes=per_image * 7)


def _torchrun(folder: Path, out: Path, in_memory: str) -> subprocess.CompletedProcess:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    cmd = _cli(folder, out, "--set", "train.max_steps=4", "--set", f"data.in_memory={in_memory}")
    cmd = [torchrun, "--nproc_per_node=2", "--master_addr=127.0.0.1", f"--master_port={port}", *cmd[1:]]
    cmd += ["--set", "data.loader_workers=1"]  # two processes with one decoding worker each
    return subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_torchrun_streamed_equals_torchrun_in_memory(folder, tmp_path):
    """Each rank streams only its slice of every global batch; the run equals the in-memory 2-process run."""
    for mode in ("true", "false"):
        result = _torchrun(folder, tmp_path / mode, mode)
        assert result.returncode == 0, result.stderr[-3000:]
    _, memory, _ = load_run(tmp_path / "true")
    _, streamed, state = load_run(tmp_path / "false")
    assert state.extra["world_size"] == 2 and state.step == 4
    assert json.loads((tmp_path / "false" / "status.json").read_text())["data"].startswith("streamed")
    for (name, a), b in zip(memory.state_dict().items(), streamed.state_dict().values()):
        assert torch.equal(a, b), name


def test_cuda_training_reads_pinned_batches(monkeypatch, folder):
    """On CUDA the loader pins its batches (so the copy to the GPU overlaps the step); on the CPU it does not."""
    import probssl.train.feed as feed

    seen = {}

    class Recorder(feed.DataLoader):
        def __init__(self, *args, **kwargs):
            seen.update(kwargs)
            super().__init__(*args, **{**kwargs, "pin_memory": False})

    monkeypatch.setattr(feed, "DataLoader", Recorder)
    lazy = load_dataset("folder", folder, image_size=10, in_memory=False, val_fraction=0.0).train.images
    batches = [torch.arange(4), torch.arange(4, 8)]
    list(feed.training_batches(lazy, batches, torch.device("cpu"), workers=0))
    assert seen["pin_memory"] is False
    assert feed._wants_pinned_memory(torch.device("cuda", 0)) and not feed._wants_pinned_memory(torch.device("cpu"))
    monkeypatch.setattr(feed, "_wants_pinned_memory", lambda device: True)  # as on a CUDA device
    list(feed.training_batches(lazy, batches, torch.device("cpu"), workers=0))
    assert seen["pin_memory"] is True
