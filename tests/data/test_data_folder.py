"""The user's own image folders, written here with Pillow."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from probssl.data import DataError, load_dataset


def save(path: Path, array: np.ndarray, mode: str | None = None) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)
    return array


def grey(seed: int, h: int = 6, w: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def make_grey_folder(root: Path, n_train: int = 6, n_test: int = 2) -> dict:
    """Classes 'cat' (label 0) and 'dog' (label 1), 6x5 grey PNGs."""
    written: dict[str, list[tuple[np.ndarray, int]]] = {"train": [], "test": []}
    seed = 0
    for split, n in (("train", n_train), ("test", n_test)):
        for label, cls in enumerate(("cat", "dog")):
            for i in range(n):
                seed += 1
                written[split].append((save(root / split / cls / f"{i:02d}.png", grey(seed)), label))
    return written


def test_grey_folder_roundtrip(tmp_path):
    written = make_grey_folder(tmp_path)
    (tmp_path / "train" / "cat" / "notes.txt").write_text("ignored")
    (tmp_path / "train" / "dog" / ".hidden.png").write_bytes(b"ignored too")
    s = load_dataset("folder", tmp_path, val_fraction=0.0)
    assert s.name == "folder" and s.train.classes == ("cat", "dog") and s.image_shape == (1, 6, 5)
    assert len(s.train) == 12 and len(s.val) == 0 and len(s.test) == 4
    # Sorted file order within each class, classes in sorted order: exactly the order written.
    for ds, split in ((s.train, "train"), (s.test, "test")):
        assert ds.images.dtype == torch.uint8 and ds.images.is_contiguous()
        for img, y, (array, label) in zip(ds.images, ds.labels, written[split]):
            assert np.array_equal(img[0].numpy(), array) and int(y) == label


def test_carved_val_is_stratified(tmp_path):
    make_grey_folder(tmp_path, n_train=10)
    s = load_dataset("folder", tmp_path, val_fraction=0.2, split_seed=1)
    assert len(s.val) == 4 and s.val.labels.bincount().tolist() == [2, 2]
    assert len(s.train) == 16


def test_explicit_val_folder_is_used(tmp_path):
    make_grey_folder(tmp_path)
    array = save(tmp_path / "val" / "dog" / "v.png", grey(99))
    s = load_dataset("folder", tmp_path, val_fraction=0.5)
    assert len(s.train) == 12 and len(s.val) == 1 and s.val.labels.tolist() == [1]
    assert np.array_equal(s.val.images[0, 0].numpy(), array)


def test_rgb_when_any_image_is_colour(tmp_path):
    make_grey_folder(tmp_path)
    rgb = np.random.default_rng(5).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    save(tmp_path / "test" / "cat" / "zz.png", rgb)
    s = load_dataset("folder", tmp_path)
    assert s.image_shape == (3, 6, 5)
    last_cat = s.test.images[int((s.test.labels == 0).nonzero()[-1])]
    assert torch.equal(last_cat, torch.from_numpy(rgb).permute(2, 0, 1))
    # Grey images become three equal channels.
    assert torch.equal(s.train.images[:, 0], s.train.images[:, 2])


def test_wrong_size_image_is_named(tmp_path):
    make_grey_folder(tmp_path)
    odd = tmp_path / "train" / "dog" / "big.png"
    save(odd, grey(7, h=9, w=4))
    with pytest.raises(DataError) as err:
        load_dataset("folder", tmp_path)
    msg = str(err.value)
    assert str(odd) in msg and "4x9" in msg and "5x6" in msg and "\n" not in msg


def test_unreadable_image_is_named(tmp_path):
    make_grey_folder(tmp_path)
    bad = tmp_path / "test" / "cat" / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="broken.jpg"):
        load_dataset("folder", tmp_path)


def test_truncated_png_is_named(tmp_path):
    make_grey_folder(tmp_path)
    victim = tmp_path / "train" / "cat" / "00.png"
    big = np.random.default_rng(0).integers(0, 256, (6, 5), dtype=np.uint8)
    save(victim, big)
    victim.write_bytes(victim.read_bytes()[:60])
    with pytest.raises(DataError, match="00.png"):
        load_dataset("folder", tmp_path)


@pytest.mark.parametrize(
    "setup, text",
    [
        (lambda root: None, "does not exist"),
        (lambda root: (root / "test" / "a").mkdir(parents=True), "has no train/ folder"),
        (lambda root: (root / "train").mkdir(parents=True), "contains no class folders"),
        (lambda root: (root / "train" / "a").mkdir(parents=True), "contains no images"),
    ],
)
def test_bad_layouts_explain_expected_layout(tmp_path, setup, text):
    root = tmp_path / "mine"
    setup(root)
    with pytest.raises(DataError) as err:
        load_dataset("folder", root)
    assert text in str(err.value) and str(root) in str(err.value)


def test_missing_test_folder(tmp_path):
    save(tmp_path / "train" / "a" / "x.png", grey(0))
    with pytest.raises(DataError, match="no test/ folder.*train/<class_name>"):
        load_dataset("folder", tmp_path)


def test_test_class_unknown_to_train(tmp_path):
    make_grey_folder(tmp_path)
    save(tmp_path / "test" / "bird" / "x.png", grey(1))
    with pytest.raises(DataError, match="bird.*no counterpart in train"):
        load_dataset("folder", tmp_path)


def test_image_outside_class_folder(tmp_path):
    make_grey_folder(tmp_path)
    save(tmp_path / "train" / "loose.png", grey(1))
    with pytest.raises(DataError, match="loose.png is directly inside train/"):
        load_dataset("folder", tmp_path)


def test_folder_needs_data_dir():
    with pytest.raises(DataError, match="needs data_dir"):
        load_dataset("folder")


def test_changes_on_disk_are_picked_up(tmp_path):
    make_grey_folder(tmp_path)
    first = load_dataset("folder", tmp_path, val_fraction=0.0)
    save(tmp_path / "train" / "cat" / "new.png", grey(123))
    second = load_dataset("folder", tmp_path, val_fraction=0.0)
    assert len(first.train) == 12 and len(second.train) == 13
