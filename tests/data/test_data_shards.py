"""Tar shards in the WebDataset layout (written here with tarfile), decoded like a folder of the same images."""

import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from probssl.data import DataError, load_dataset
from probssl.data.lazy import is_lazy
from probssl.data.registry import clear_cache


def _png(array: np.ndarray, fmt: str = "png") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_shards(root: Path, per_shard: int = 6, labelled: bool = True, folder: Path | None = None) -> None:
    """train-000000.tar, train-000001.tar and test-000000.tar of 8x8 RGB samples of classes 0/1 (and, if
    ``folder`` is given, the same images as a folder dataset)."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for shard in ("train-000000", "train-000001", "test-000000"):
        with tarfile.open(root / f"{shard}.tar", "w") as tar:
            for i in range(per_shard):
                label = i % 2
                image = (rng.integers(0, 100, (8, 8, 3)) + 120 * label).astype(np.uint8)
                key = f"{shard}_{i:04d}"
                _add(tar, f"{key}.png", _png(image))
                if labelled:
                    _add(tar, f"{key}.cls", f"{label}\n".encode())
                if folder is not None:
                    target = folder / shard.split("-")[0] / f"c{label}" / f"{key}.png"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(image).save(target)


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


def test_shards_decode_like_the_same_images_in_a_folder(tmp_path):
    write_shards(tmp_path / "shards", folder=tmp_path / "folder")
    (tmp_path / "shards" / "classes.txt").write_text("c0\nc1\n")
    shards = load_dataset("shards", tmp_path / "shards", val_fraction=0.0)
    folder = load_dataset("folder", tmp_path / "folder", val_fraction=0.0)
    assert shards.train.classes == folder.train.classes == ("c0", "c1") and len(shards.train) == 12
    # The folder orders by class then name; the shards by shard then member: compare sorted by key.
    for split in ("train", "test"):
        a, b = getattr(shards, split), getattr(folder, split)
        order_a = torch.argsort(a.labels * 1000 + torch.arange(len(a)) % 1000, stable=True)
        assert torch.equal(a.images[order_a], b.images) and torch.equal(a.labels[order_a], b.labels)


def test_streamed_shards_read_each_member_by_its_byte_range(tmp_path):
    write_shards(tmp_path)
    memory = load_dataset("shards", tmp_path, val_fraction=0.0, in_memory=True)
    clear_cache()
    lazy = load_dataset("shards", tmp_path, val_fraction=0.0, in_memory=False)
    assert is_lazy(lazy.train.images) and lazy.train.classes == ("0", "1")
    assert torch.equal(lazy.train.images[:], memory.train.images)
    ref = lazy.train.images.paths[7]
    assert str(ref).endswith("train-000001.tar:train-000001_0001.png")
    assert pickle.loads(pickle.dumps(ref)).offset == ref.offset  # what a DataLoader worker receives


def test_unlabelled_shards(tmp_path):
    write_shards(tmp_path, labelled=False)
    splits = load_dataset("shards", tmp_path, val_fraction=0.0)
    assert splits.train.classes == () and bool((splits.train.labels == -1).all())


@pytest.mark.parametrize(
    "damage, message",
    [
        ("no-test", "has no test-\\*.tar shard"),
        ("mixed", "mixes samples with and without a .cls label"),
        ("bad-cls", "holds 'cat', not a class index"),
        ("gzip", "could not be read as an uncompressed tar file"),
        ("two-images", "has two images"),
        ("classes-short", "classes.txt names only 1 classes"),
        ("corrupt-image", "could not be read as an image"),
    ],
)
def test_broken_shards_are_named(tmp_path, damage, message):
    write_shards(tmp_path)
    shard = tmp_path / "train-000001.tar"
    if damage == "no-test":
        (tmp_path / "test-000000.tar").unlink()
    elif damage in ("mixed", "bad-cls", "two-images", "corrupt-image"):
        with tarfile.open(shard, "a") as tar:
            extra = _png(np.zeros((8, 8, 3), np.uint8))
            if damage == "mixed":
                _add(tar, "lonely.png", extra)
            elif damage == "bad-cls":
                _add(tar, "x.png", extra)
                _add(tar, "x.cls", b"cat")
            elif damage == "two-images":
                _add(tar, "train-000001_0000.jpg", _png(np.zeros((8, 8, 3), np.uint8), "jpeg"))
            else:
                _add(tar, "y.png", b"not a png at all")
                _add(tar, "y.cls", b"0")
    elif damage == "gzip":
        shard.write_bytes(__import__("gzip").compress(shard.read_bytes()))
    elif damage == "classes-short":
        (tmp_path / "classes.txt").write_text("only-one\n")
    with pytest.raises(DataError, match=message):
        load_dataset("shards", tmp_path, val_fraction=0.0)


def test_links_inside_a_shard_are_never_followed(tmp_path):
    write_shards(tmp_path)
    secret = tmp_path / "secret.png"
    Image.fromarray(np.full((8, 8, 3), 255, np.uint8)).save(secret)
    with tarfile.open(tmp_path / "train-000000.tar", "a") as tar:
        link = tarfile.TarInfo("evil.png")
        link.type, link.linkname = tarfile.SYMTYPE, str(secret)
        tar.addfile(link)
    splits = load_dataset("shards", tmp_path, val_fraction=0.0)
    assert len(splits.train) == 12  # the link is not a sample


def test_train_and_eval_on_streamed_shards_through_the_cli(tmp_path):
    write_shards(tmp_path / "shards", per_shard=16)
    sets = [
        "method.name=simclr",
        "model.backbone=convnet",
        "model.width=0.25",
        "data.name=shards",
        f"data.data_dir={tmp_path / 'shards'}",
        "data.in_memory=false",
        "train.batch_size=8",
        "train.max_steps=3",
        "train.progress=false",
        "train.monitor_every=0",
        "train.num_threads=1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = tmp_path / "run"
    train = [sys.executable, "-m", "probssl", "train", *[x for s in sets for x in ("--set", s)], "--out", str(run)]
    result = subprocess.run(train, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run / "status.json").read_text())["data"].startswith("streamed")
    result = subprocess.run(
        [sys.executable, "-m", "probssl", "eval", str(run), "--quick"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run / "eval.json").read_text())["streamed_data"]["train_images"] > 0
