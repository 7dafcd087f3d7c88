"""File lists as datasets (data.name: manifest): CSV with a header, or TXT with one path per line."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from probssl.config import Config, DataConfig
from probssl.data import UNLABELLED, DataError, load_dataset, load_splits


def save(path: Path, seed: int, h: int = 4, w: int = 3) -> np.ndarray:
    """A grey PNG at ``path``; returns its pixels [h, w]."""
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)
    Image.fromarray(array).save(path)
    return array


def as_set(images: torch.Tensor) -> set[bytes]:
    return {img[0].numpy().tobytes() for img in images}


def test_csv_with_labels_and_splits(tmp_path):
    lines = ["path,label,split,notes"]
    written = {}
    for i in range(8):
        label = "10" if i % 2 else "9"  # integer names sort numerically: "9" is class 0
        split = "test" if i >= 6 else "train"
        written[f"img/{i}.png"] = (save(tmp_path / "img" / f"{i}.png", i), label, split)
        lines.append(f"img/{i}.png,{label},{split},anything")
    (tmp_path / "list.csv").write_text("\n".join(lines) + "\n")
    s = load_dataset("manifest", tmp_path / "list.csv", val_fraction=0.0)
    assert s.labelled and s.train.classes == ("9", "10") and s.name == "manifest"
    assert (len(s.train), len(s.val), len(s.test)) == (6, 0, 2)
    for img, y in zip(s.train.images, s.train.labels):  # manifest order, labels by class name
        match = [v for v in written.values() if np.array_equal(v[0], img[0].numpy())]
        assert len(match) == 1 and s.train.classes[int(y)] == match[0][1]
    assert s.test.labels.tolist() == [0, 1]


def test_txt_is_unlabelled_with_absolute_relative_comment_and_blank_lines(tmp_path):
    arrays = [save(tmp_path / "a" / f"{i}.png", i) for i in range(5)]
    elsewhere = tmp_path / "other dir" / "x y.png"  # spaces inside a path are kept
    arrays.append(save(elsewhere, 50))
    text = ["# my images", "", *(f"a/{i}.png" for i in range(5)), f"  {elsewhere}  "]
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "files.txt").write_text("\n".join(text).replace("a/", "../a/"))
    s = load_dataset("manifest", tmp_path / "lists" / "files.txt", val_fraction=0.2, test_fraction=0.2)
    assert not s.labelled and s.num_classes == 0
    assert (len(s.train), len(s.val), len(s.test)) == (4, 1, 1)  # test carved first, then val
    every = torch.cat([s.train.images, s.val.images, s.test.images])
    assert as_set(every) == {a.tobytes() for a in arrays}
    assert set(s.train.labels.tolist()) == {UNLABELLED}


def test_duplicates_are_visited_once_and_conflicts_are_errors(tmp_path):
    for i in range(4):
        save(tmp_path / f"{i}.png", i)
    os.symlink(tmp_path / "0.png", tmp_path / "link.png")
    rows = ["path,label", "0.png,a", "1.png,b", "./0.png,a", "link.png,a", f"{tmp_path / '2.png'},a", "3.png,b"]
    (tmp_path / "m.csv").write_text("\n".join(rows))
    s = load_dataset("manifest", tmp_path / "m.csv", val_fraction=0.0, test_fraction=0.25)
    assert len(s.train) + len(s.test) == 4  # 0.png listed three times (two spellings and a symlink): once
    (tmp_path / "bad.csv").write_text("path,label\n0.png,a\n1.png,b\n2.png,a\nlink.png,b\n")
    with pytest.raises(DataError, match=r"bad.csv lines 2 and 5 list the same image .*0.png with different labels"):
        load_dataset("manifest", tmp_path / "bad.csv")


def test_a_missing_file_is_named_with_its_line(tmp_path):
    save(tmp_path / "0.png", 0)
    (tmp_path / "m.txt").write_text("0.png\n\n# comment\ngone.png\n")
    with pytest.raises(DataError, match=r"m.txt line 4: image 'gone.png' .* does not exist"):
        load_dataset("manifest", tmp_path / "m.txt")
    (tmp_path / "m.csv").write_text('path,label\n0.png,a\n"sub, dir/gone.png",b\n')
    with pytest.raises(DataError, match=r"m.csv line 3: image 'sub, dir/gone.png'"):
        load_dataset("manifest", tmp_path / "m.csv")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("file,label\n0.png,a\n", r"line 1: no 'path' column"),
        ("path,label\n0.png,\n", r"line 2: the label is empty"),
        ("path,split\n0.png,holdout\n", r"line 2: split 'holdout' is not one of train, val, test"),
        ("path,label,split\n0.png,a,train\n0.png,a,test\n", r"lines 2 and 3 list the same image"),
        ("path,label,split\n0.png,a,train\n1.png,b,test\n", r"class 'b' .* has no training rows"),
        ("path,split\n0.png,test\n", r"lists no training images"),
        ("path\n0.png\n1.png\n", r"has 2 image\(s\); carving .* needs at least 3"),
    ],
)
def test_bad_csv_manifests_name_the_file_and_line(tmp_path, text, match):
    save(tmp_path / "0.png", 0)
    save(tmp_path / "1.png", 1)
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(DataError, match=match) as err:
        load_dataset("manifest", tmp_path / "m.csv")
    assert "m.csv" in str(err.value)


def test_the_manifest_itself_must_exist_and_be_a_file(tmp_path):
    with pytest.raises(DataError, match="needs data_dir"):
        load_dataset("manifest", None)
    with pytest.raises(DataError, match="nope.csv does not exist"):
        load_dataset("manifest", tmp_path / "nope.csv")
    with pytest.raises(DataError, match="is a folder, not a file list"):
        load_dataset("manifest", tmp_path)


def test_an_undecodable_file_is_named(tmp_path):
    for i in range(3):
        save(tmp_path / f"{i}.png", i)
    (tmp_path / "fake.png").write_bytes(b"not a png")
    (tmp_path / "m.txt").write_text("0.png\n1.png\n2.png\nfake.png\n")
    with pytest.raises(DataError, match=r"fake.png could not be read as an image"):
        load_dataset("manifest", tmp_path / "m.txt")


def test_config_route_mixed_sizes_and_a_changed_file_is_seen(tmp_path):
    for i in range(4):
        save(tmp_path / f"{i}.png", i, h=4 + i, w=6)
    (tmp_path / "m.csv").write_text("\ufeffpath\n" + "\n".join(f"{i}.png" for i in range(4)))  # Excel's BOM
    data = DataConfig(name="file-list", data_dir=str(tmp_path / "m.csv"), image_size=3, resize="stretch")
    s = load_splits(Config(data=data))
    assert s.image_shape == (1, 3, 3) and len(s.train) + len(s.val) + len(s.test) == 4
    (tmp_path / "m.csv").write_text("path\n" + "\n".join(f"{i}.png" for i in range(3)))
    assert sum(map(len, (lambda t: (t.train, t.val, t.test))(load_splits(Config(data=data))))) == 3
