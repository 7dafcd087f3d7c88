"""Images as users have them (#13): mixed sizes and formats, every Pillow mode, 16-bit, alpha, symlinks, bombs."""

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from probssl.cli.main import main
from probssl.data import DataError, load_dataset

MODES = ["L", "LA", "RGB", "RGBA", "P", "I;16"]
FORMATS = [".png", ".jpg", ".webp", ".bmp", ".tif"]


def _image(mode: str, size: tuple[int, int], value: int) -> Image.Image:
    if mode == "I;16":
        return Image.fromarray(np.full(size[::-1], value * 257, dtype=np.uint16))  # 16-bit, full range
    img = Image.new("RGB", size, (value, value // 2, 255 - value))
    return img.convert(mode) if mode != "RGB" else img


def _tree(root: Path, n: int = 6) -> Path:
    """train/ and test/ with two classes of mixed sizes, modes and formats."""
    for split in ("train", "test"):
        for k, cls in enumerate(("a", "b")):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                mode, fmt = MODES[i % len(MODES)], FORMATS[i % len(FORMATS)]
                if fmt in (".jpg", ".bmp") and mode in ("LA", "RGBA", "I;16"):
                    fmt = ".png"  # formats that cannot hold the mode
                if fmt == ".webp" and mode in ("I;16", "P"):
                    fmt = ".png"
                _image(mode, (20 + 7 * i, 16 + 5 * k), 40 + 30 * k + i).save(d / f"{i}{fmt}")
    return root


def test_mixed_sizes_need_an_image_size_and_then_load_in_every_resize_mode(tmp_path):
    root = _tree(tmp_path / "imgs")
    with pytest.raises(DataError, match="Set data.image_size"):
        load_dataset("folder", root)
    for resize in ("short-side-crop", "stretch", "pad"):
        splits = load_dataset("folder", root, image_size=16, resize=resize, val_fraction=0.2)
        assert splits.image_shape == (3, 16, 16) and len(splits.train) + len(splits.val) == 12


def test_sixteen_bit_is_scaled_not_clipped_and_alpha_is_composited(tmp_path):
    root = tmp_path / "imgs"
    for split in ("train", "test"):
        for cls, value in (("a", 200), ("b", 60)):
            (root / split / cls).mkdir(parents=True)
            Image.fromarray(np.full((8, 8), value * 257, dtype=np.uint16)).save(root / split / cls / "x.png")
    splits = load_dataset("folder", root, val_fraction=0.0)
    assert splits.image_shape[0] == 1 and sorted(splits.test.images.flatten().unique().tolist()) == [60, 200]
    transparent = Image.new("LA", (8, 8), (255, 0))  # white but fully transparent
    transparent.save(root / "train" / "a" / "y.png")
    for background in (0, 255):
        splits = load_dataset("folder", root, val_fraction=0.0, alpha_background=background)
        assert int(splits.train.images.max()) in (200, 255) and background in splits.train.images.unique().tolist()


def test_symlink_loops_and_duplicate_links_never_inflate_or_mislabel(tmp_path):
    root = _tree(tmp_path / "imgs", n=3)
    os.symlink("..", root / "train" / "a" / "loop")  # train/a/loop -> train/
    os.symlink(root / "train" / "a" / "0.png", root / "train" / "b" / "dup.png")  # the same file in b
    splits = load_dataset("folder", root, image_size=12, val_fraction=0.0)
    assert len(splits.train) == 6 and splits.train.labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_an_image_above_the_pixel_limit_is_refused_from_its_header(tmp_path):
    root = _tree(tmp_path / "imgs", n=2)
    with pytest.raises(DataError, match=r"above data.max_image_pixels = 100.*refused before decoding"):
        load_dataset("folder", root, image_size=12, max_image_pixels=100)


def test_train_and_eval_a_folder_of_mixed_images_from_the_cli(tmp_path):
    root = _tree(tmp_path / "imgs", n=8)
    run = tmp_path / "run"
    sets = [
        "data.name=folder",
        f"data.data_dir={root}",
        "data.image_size=16",
        "train.epochs=2",
        "train.batch_size=8",
        "train.progress=false",
        "data.val_fraction=0.25",
        "model.width=0.25",
    ]
    assert main(["train", "--preset", "simclr-digits", "--out", str(run), *sum((["--set", s] for s in sets), [])]) == 0
    assert main(["eval", str(run), "--quick", "--ood", "noise"]) == 0
    assert (run / "eval.json").exists()


def test_an_ood_dataset_of_a_folder_run_is_not_looked_for_inside_the_folder(tmp_path, shared_data_dir, monkeypatch):
    root = _tree(tmp_path / "imgs", n=8)
    monkeypatch.setenv("PROBSSL_DATA", shared_data_dir)
    run = tmp_path / "run"
    sets = [
        "data.name=folder",
        f"data.data_dir={root}",
        "data.image_size=16",
        "train.epochs=1",
        "train.batch_size=8",
        "train.progress=false",
        "data.val_fraction=0.25",
        "model.width=0.25",
    ]
    assert main(["train", "--preset", "simclr-digits", "--out", str(run), *sum((["--set", s] for s in sets), [])]) == 0
    assert main(["eval", str(run), "--quick", "--ood", "mnist"]) == 0
    assert not (root / "mnist").exists()  # nothing created inside the user's image folder
