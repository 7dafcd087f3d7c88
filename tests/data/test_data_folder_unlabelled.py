"""Unlabelled image folders (data.name: unlabelled-folder), written here with Pillow."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from probssl.config import Config, DataConfig
from probssl.data import UNLABELLED, DataError, ImageDataset, keep_classes, load_dataset, load_splits


def save(path: Path, array: np.ndarray) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return array


def rgb(seed: int, h: int = 6, w: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def pixels(images: torch.Tensor) -> set[bytes]:
    """Each image's bytes, to compare sets of images regardless of order."""
    return {img.numpy().tobytes() for img in images}


def test_every_image_below_the_root_is_one_pool_split_three_ways(tmp_path):
    written = [save(tmp_path / sub / f"{i}.png", rgb(i)) for i, sub in enumerate(["a", "a", "b/c", ".", "b"] * 4)]
    (tmp_path / "notes.txt").write_text("not an image")
    s = load_dataset("unlabelled-folder", tmp_path, val_fraction=0.1, test_fraction=0.25)
    assert not s.labelled and s.num_classes == 0 and s.train.classes == () and s.name == "unlabelled-folder"
    assert (len(s.train), len(s.val), len(s.test)) == (13, 2, 5)  # 20 images: 5 test, then 2 of 15 for val
    for split in (s.train, s.val, s.test):
        assert split.labels.tolist() == [UNLABELLED] * len(split) and split.image_shape == (3, 6, 5)
    every = pixels(torch.cat([s.train.images, s.val.images, s.test.images]))
    assert every == {a.transpose(2, 0, 1).tobytes() for a in written}  # each image exactly once


def test_the_carved_test_split_does_not_depend_on_split_seed(tmp_path):
    for i in range(12):
        save(tmp_path / f"{i:02d}.png", rgb(i))
    a = load_dataset("unlabelled-folder", tmp_path, split_seed=0)
    b = load_dataset("unlabelled-folder", tmp_path, split_seed=7)
    assert pixels(a.test.images) == pixels(b.test.images)
    assert pixels(a.val.images) != pixels(b.val.images)  # the validation carving does follow the seed


def test_train_val_test_folders_are_used_when_train_exists(tmp_path):
    train = [save(tmp_path / "train" / "x" / f"{i}.png", rgb(i)) for i in range(4)]
    test = [save(tmp_path / "test" / f"{i}.png", rgb(10 + i)) for i in range(2)]
    val = [save(tmp_path / "val" / "v.png", rgb(20))]
    s = load_dataset("unlabelled-folder", tmp_path, val_fraction=0.5)
    assert pixels(s.train.images) == {a.transpose(2, 0, 1).tobytes() for a in train}
    assert pixels(s.test.images) == {a.transpose(2, 0, 1).tobytes() for a in test}
    assert pixels(s.val.images) == {a.transpose(2, 0, 1).tobytes() for a in val}


def test_symlinks_never_duplicate_an_image(tmp_path):
    for i in range(6):
        save(tmp_path / "pics" / f"{i}.png", rgb(i))
    os.symlink(tmp_path / "pics" / "0.png", tmp_path / "pics" / "again.png")
    os.symlink(tmp_path / "pics", tmp_path / "pics" / "loop")
    s = load_dataset("unlabelled-folder", tmp_path, val_fraction=0.2)
    assert len(s.train) + len(s.val) + len(s.test) == 6


def test_mixed_sizes_need_image_size_and_the_error_names_the_file(tmp_path):
    for i in range(4):
        save(tmp_path / f"{i}.png", rgb(i))
    save(tmp_path / "big.png", rgb(9, 12, 10))
    with pytest.raises(DataError, match="big.png is 10x12 pixels.*data.image_size"):
        load_dataset("unlabelled-folder", tmp_path)
    assert load_dataset("unlabelled-folder", tmp_path, image_size=4).image_shape == (3, 4, 4)


def test_layout_errors_name_the_folder(tmp_path):
    with pytest.raises(DataError, match="needs data_dir"):
        load_dataset("unlabelled-folder", None)
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("unlabelled-folder", tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty contains no images"):
        load_dataset("unlabelled-folder", tmp_path / "empty")
    save(tmp_path / "few" / "a.png", rgb(0))
    save(tmp_path / "few" / "b.png", rgb(1))
    with pytest.raises(DataError, match="few has 2 image.*at least 3"):
        load_dataset("unlabelled-folder", tmp_path / "few")
    save(tmp_path / "only_test" / "test" / "a.png", rgb(0))
    with pytest.raises(DataError, match="has test/ but no train/"):
        load_dataset("unlabelled-folder", tmp_path / "only_test")


def test_a_labelled_folder_with_loose_images_points_to_unlabelled_folder(tmp_path):
    save(tmp_path / "train" / "a.png", rgb(0))
    with pytest.raises(DataError, match="data.name: unlabelled-folder"):
        load_dataset("folder", tmp_path)


def test_config_route_and_classes_refused(tmp_path):
    for i in range(5):
        save(tmp_path / f"{i}.png", rgb(i))
    data = DataConfig(name="unlabeled-folder", data_dir=str(tmp_path), test_fraction=0.2)  # US spelling: alias
    s = load_splits(Config(data=data))
    assert len(s.test) == 1 and not s.labelled
    with pytest.raises(DataError, match="data.classes needs labelled images"):
        keep_classes(s.train, [0, 1])


def test_image_dataset_labels_of_an_unlabelled_set_must_all_be_unlabelled():
    images = torch.zeros(2, 1, 2, 2, dtype=torch.uint8)
    assert not ImageDataset(images, torch.full((2,), UNLABELLED), (), "x").labelled
    with pytest.raises(ValueError, match="every label -1"):
        ImageDataset(images, torch.tensor([0, UNLABELLED]), (), "x")


def test_cli_trains_and_evaluates_an_unlabelled_folder_in_separate_processes(tmp_path):
    """``probssl train`` then ``probssl eval`` (two processes) on mixed-size RGB and grey images without classes:
    training runs (monitors only label-free), evaluation runs the label-free sections and names the skipped ones."""
    import json
    import subprocess
    import sys

    images = tmp_path / "photos"
    for i in range(24):
        array = rgb(i, 10 + i % 3, 12)
        save(images / ("grey" if i % 4 == 0 else "colour") / f"{i}.png", array[..., 0] if i % 4 == 0 else array)
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    sets = ["data.name=unlabelled-folder", f"data.data_dir={images}", "data.image_size=8", "train.max_steps=2"]
    sets += ["train.batch_size=8", "train.progress=false"]
    train = [sys.executable, "-m", "probssl", "train", "--preset", "vsimclr-digits", "--out", str(run)]
    for item in sets:
        train += ["--set", item]
    done = subprocess.run(train, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    evaluated = subprocess.run(
        [sys.executable, "-m", "probssl", "eval", str(run)], capture_output=True, text=True, env=env, timeout=300
    )
    assert evaluated.returncode == 0, evaluated.stderr
    assert "effective_rank" in evaluated.stdout and "skipped: probes" in evaluated.stdout
    metrics = json.loads((run / "eval.json").read_text())
    assert metrics["splits"]["num_classes"] == 0 and metrics["splits"]["image_shape"] == [3, 8, 8]
    assert "probes" not in metrics and "needs labels" in metrics["skipped"]["probes"]
    assert metrics["geometry"]["representation"]["effective_rank"] >= 1
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    monitored = {key for row in logged for key in row if key.startswith("monitor/")}
    assert "monitor/effective_rank" in monitored and "monitor/knn_acc" not in monitored


def test_a_supervised_method_refuses_unlabelled_images():
    from probssl.methods.labels import require_labels

    with pytest.raises(DataError, match="supcon is supervised, but the training images have no labels"):
        require_labels("supcon", torch.full((4,), UNLABELLED))
    assert require_labels("supcon", torch.tensor([0, 1])).tolist() == [0, 1]
