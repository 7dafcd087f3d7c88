"""STL-10 on small files in the official binary layout (column-major 96x96 planes, labels 1..10)."""

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from probssl.data import UNLABELLED, DataError, load_dataset, stl10
from probssl.data.lazy import is_lazy
from probssl.data.registry import clear_cache

COUNTS = {"train": 6, "test": 4, "unlabeled": 5}


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


def official_bytes(images: np.ndarray) -> bytes:
    """uint8 [N, 3, 96, 96] (N, C, row, column) -> the .bin layout: each plane column-major, as MATLAB writes it."""
    return np.ascontiguousarray(images.transpose(0, 1, 3, 2)).tobytes()


def make_files(rng) -> tuple[dict[str, bytes], dict[str, np.ndarray]]:
    arrays, files = {}, {}
    for split, n in COUNTS.items():
        arrays[split] = rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8)
        files[f"stl10_binary/{split}_X.bin"] = official_bytes(arrays[split])
        if split != "unlabeled":
            arrays[f"{split}_y"] = rng.integers(0, 10, n)
            files[f"stl10_binary/{split}_y.bin"] = (arrays[f"{split}_y"] + 1).astype(np.uint8).tobytes()
    files["stl10_binary/class_names.txt"] = "\n".join(stl10.STL10_CLASSES).encode()
    return files, arrays


def patch_md5s(monkeypatch, files: dict[str, bytes]) -> None:
    for member, data in files.items():
        if member.endswith(".bin"):
            monkeypatch.setitem(stl10.STL10_MD5, member, hashlib.md5(data).hexdigest())


def write_archive(path: Path, files: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_labelled_and_unlabeled_from_the_archive(tmp_path, monkeypatch):
    files, arrays = make_files(np.random.default_rng(0))
    patch_md5s(monkeypatch, files)
    archive = write_archive(tmp_path / "stl10" / "stl10_binary.tar.gz", files)
    monkeypatch.setitem(stl10.STL10_MD5, stl10.ARCHIVE, hashlib.md5(archive.read_bytes()).hexdigest())

    splits = load_dataset("stl10", tmp_path, val_fraction=0.0, download=False)
    assert splits.train.classes == stl10.STL10_CLASSES and splits.image_shape == (3, 96, 96)
    assert torch.equal(splits.train.images, torch.from_numpy(arrays["train"]))
    assert splits.train.labels.tolist() == arrays["train_y"].tolist()
    assert torch.equal(splits.test.images, torch.from_numpy(arrays["test"]))
    assert splits.test.labels.tolist() == arrays["test_y"].tolist()
    # pixel (row 1, column 2) of channel 2 is byte 2 * 9216 + 2 * 96 + 1 of the image in the file
    raw = np.frombuffer(files["stl10_binary/train_X.bin"], dtype=np.uint8)
    assert int(splits.train.images[3, 2, 1, 2]) == int(raw[3 * stl10.ROW + 2 * 9216 + 2 * 96 + 1])

    pre = load_dataset("stl10_unlabelled", tmp_path, val_fraction=0.0, download=False)
    assert not pre.labelled and pre.train.classes == () and len(pre.train) == 11 and len(pre.test) == 4
    assert bool((pre.train.labels == UNLABELLED).all()) and bool((pre.test.labels == UNLABELLED).all())
    assert torch.equal(pre.train.images, torch.from_numpy(np.concatenate([arrays["unlabeled"], arrays["train"]])))
    # the members were extracted beside the archive, each MD5-checked
    assert (tmp_path / "stl10" / "stl10_binary" / "unlabeled_X.bin").read_bytes() == files[
        "stl10_binary/unlabeled_X.bin"
    ]


def test_streamed_rows_equal_the_in_memory_images(tmp_path, monkeypatch):
    files, arrays = make_files(np.random.default_rng(1))
    patch_md5s(monkeypatch, files)
    for member, data in files.items():  # the already extracted folder: no archive needed
        (tmp_path / "stl10" / member).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "stl10" / member).write_bytes(data)
    lazy = load_dataset("stl10-unlabeled", tmp_path, val_fraction=0.2, download=False, in_memory=False)
    assert is_lazy(lazy.train.images)
    clear_cache()
    memory = load_dataset("stl10-unlabeled", tmp_path, val_fraction=0.2, download=False, in_memory=True)
    assert not is_lazy(memory.train.images)
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(lazy, split).images[:], getattr(memory, split).images)


def test_missing_corrupt_and_wrong_files(tmp_path, monkeypatch):
    with pytest.raises(DataError) as err:
        load_dataset("stl10", tmp_path, download=False)
    assert "stl10_binary.tar.gz" in str(err.value) and "91f7769df0f17e558f3565bffb0c7dfb" in str(err.value)

    files, _ = make_files(np.random.default_rng(2))
    patch_md5s(monkeypatch, files)
    folder = tmp_path / "stl10" / "stl10_binary"
    folder.mkdir(parents=True)
    for member, data in files.items():
        (tmp_path / "stl10" / member).write_bytes(data)
    (folder / "train_X.bin").write_bytes(files["stl10_binary/train_X.bin"][:-10])  # truncated copy
    with pytest.raises(DataError) as err:
        load_dataset("stl10", tmp_path, download=False)
    assert str(folder / "train_X.bin") in str(err.value) and "corrupt" in str(err.value)

    # the right MD5 registered for a file whose labels are outside 1..10 (a wrong file) is refused by content too
    bad = bytes([0, 11, 3, 4, 5, 6])
    (folder / "train_X.bin").write_bytes(files["stl10_binary/train_X.bin"])
    (folder / "train_y.bin").write_bytes(bad)
    monkeypatch.setitem(stl10.STL10_MD5, "stl10_binary/train_y.bin", hashlib.md5(bad).hexdigest())
    with pytest.raises(DataError, match="outside 1..10"):
        load_dataset("stl10", tmp_path, download=False)


def test_archive_member_with_the_wrong_md5_is_not_kept(tmp_path, monkeypatch):
    files, _ = make_files(np.random.default_rng(3))
    patch_md5s(monkeypatch, files)
    monkeypatch.setitem(stl10.STL10_MD5, "stl10_binary/test_X.bin", "0" * 32)
    archive = write_archive(tmp_path / "stl10" / "stl10_binary.tar.gz", files)
    monkeypatch.setitem(stl10.STL10_MD5, stl10.ARCHIVE, hashlib.md5(archive.read_bytes()).hexdigest())
    with pytest.raises(DataError, match="test_X.bin has MD5"):
        load_dataset("stl10", tmp_path, download=False)
    assert not (tmp_path / "stl10" / "stl10_binary" / "test_X.bin").exists()
    assert not list((tmp_path / "stl10" / "stl10_binary").glob(".*part"))


def fold_lines(rng, n_train: int, per_fold: int) -> list[list[int]]:
    return [rng.choice(n_train, per_fold, replace=False).tolist() for _ in range(10)]


def test_a_fold_trains_on_its_official_indices(tmp_path, monkeypatch):
    """data.fold: K keeps the K-th line of fold_indices.txt (0-based indices into train, in the file's order), from
    the archive, in memory and streamed alike; the test split is unchanged."""
    rng = np.random.default_rng(4)
    files, arrays = make_files(rng)
    folds = fold_lines(rng, COUNTS["train"], 3)
    files["stl10_binary/fold_indices.txt"] = ("\n".join(" ".join(map(str, f)) for f in folds) + "\n").encode()
    patch_md5s(monkeypatch, files)
    archive = write_archive(tmp_path / "stl10" / "stl10_binary.tar.gz", files)
    monkeypatch.setitem(stl10.STL10_MD5, stl10.ARCHIVE, hashlib.md5(archive.read_bytes()).hexdigest())
    for in_memory in (True, False):
        clear_cache()
        splits = load_dataset("stl10", tmp_path, val_fraction=0.0, download=False, fold=7, in_memory=in_memory)
        assert torch.equal(splits.train.images[:], torch.from_numpy(arrays["train"][folds[7]]))
        assert splits.train.labels.tolist() == arrays["train_y"][folds[7]].tolist()
        assert torch.equal(splits.test.images[:], torch.from_numpy(arrays["test"]))
    clear_cache()
    assert len(load_dataset("stl10", tmp_path, val_fraction=0.0, download=False).train) == COUNTS["train"]


def test_a_wrong_fold_file_or_option_is_one_clear_error(tmp_path, monkeypatch):
    from probssl.config import load_config
    from probssl.data import load_splits

    files, _ = make_files(np.random.default_rng(5))
    patch_md5s(monkeypatch, files)
    for member, data in files.items():
        (tmp_path / "stl10" / member).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "stl10" / member).write_bytes(data)
    path = tmp_path / "stl10" / "stl10_binary" / "fold_indices.txt"
    for content in ("1 2\n" * 9, "0 1 x\n" * 10, "0 0 1\n" * 10, "0 1 6\n" * 10):  # 9 lines, text, repeats, >= 6
        path.write_text(content)
        clear_cache()
        with pytest.raises(DataError) as err:
            load_dataset("stl10", tmp_path, download=False, fold=0)
        assert str(path) in str(err.value)
    with pytest.raises(DataError, match="0-9"):
        load_dataset("stl10", tmp_path, download=False, fold=10)
    with pytest.raises(DataError, match="use data.name: stl10"):
        load_dataset("stl10-unlabeled", tmp_path, download=False, fold=1)
    mnist = load_config("simclr-mnist", overrides=["data.fold=3"])
    with pytest.raises(DataError, match="data.fold is an option of stl10"):
        load_splits(mnist)


def test_download_is_md5_checked_extracted_and_read(tmp_path, monkeypatch):
    """download=True fetches the archive from STL10_URLS (a file:// URL here): a served file with the wrong MD5 is
    one error that leaves nothing behind; the right one is kept, its members extracted (each MD5-checked) and read."""
    files, arrays = make_files(np.random.default_rng(6))
    patch_md5s(monkeypatch, files)
    served = write_archive(tmp_path / "server" / "stl10_binary.tar.gz", files)
    monkeypatch.setattr(stl10, "STL10_URLS", (served.as_uri(),))
    root = tmp_path / "root"
    monkeypatch.setitem(stl10.STL10_MD5, stl10.ARCHIVE, "0" * 32)
    with pytest.raises(DataError) as err:
        load_dataset("stl10", root, val_fraction=0.0, download=True)
    assert "stl10_binary.tar.gz" in str(err.value) and "0" * 32 in str(err.value) and served.as_uri() in str(err.value)
    assert list((root / "stl10").iterdir()) == []  # no partial archive, no temporary file

    monkeypatch.setitem(stl10.STL10_MD5, stl10.ARCHIVE, hashlib.md5(served.read_bytes()).hexdigest())
    splits = load_dataset("stl10", root, val_fraction=0.0, download=True)
    assert (root / "stl10" / "stl10_binary.tar.gz").read_bytes() == served.read_bytes()
    extracted = sorted(p.name for p in (root / "stl10" / "stl10_binary").iterdir())
    assert extracted == ["test_X.bin", "test_y.bin", "train_X.bin", "train_y.bin"]  # only the needed members
    assert torch.equal(splits.train.images, torch.from_numpy(arrays["train"]))
    assert splits.test.labels.tolist() == arrays["test_y"].tolist()
