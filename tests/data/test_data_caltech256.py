"""Caltech-256 on a small tar in the official layout (256_ObjectCategories/NNN.name/NNN_KKKK.jpg, 257.clutter)."""

import hashlib
import io
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from probssl.data import DataError, load_dataset
from probssl.data import caltech256 as caltech
from probssl.data.registry import clear_cache

CATEGORIES = {"001.ak47": 6, "002.american-flag": 5, "003.backpack": 7, "257.clutter": 4}
PER_CLASS = 3  # train images per class in these tests (60 officially)


@pytest.fixture(autouse=True)
def _small_split(monkeypatch):
    monkeypatch.setattr(caltech, "TRAIN_PER_CLASS", PER_CLASS)
    clear_cache()
    yield
    clear_cache()


def jpeg(array) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def official_files(rng) -> dict[str, bytes]:
    files = {}
    for folder, n in CATEGORIES.items():
        number = folder.split(".")[0]
        for k in range(1, n + 1):
            # the images differ in size (as the real ones): every one is brought to data.image_size
            shape = (20 + k, 24, 3) if k != 2 else (22, 18)  # one grey-scale image per class
            files[f"256_ObjectCategories/{folder}/{number}_{k:04d}.jpg"] = jpeg(
                rng.integers(0, 256, shape, dtype=np.uint8)
            )
    files["256_ObjectCategories/003.backpack/RENAME2"] = b"not an image"  # the official 198.spider/ has one
    return files


def write_tar(path, files):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:  # uncompressed, as the official archive
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def expected_image(data: bytes, size: int) -> torch.Tensor:
    """short-side-crop to size x size: the short side scaled (bilinear), then the centre crop, as RGB [C, H, W]."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = img.size
    scale = max(size / w, size / h)
    img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR)
    left, top = (img.size[0] - size) // 2, (img.size[1] - size) // 2
    return torch.from_numpy(np.asarray(img.crop((left, top, left + size, top + size))).transpose(2, 0, 1).copy())


def test_tar_read_in_place_with_a_fixed_per_class_split(tmp_path, monkeypatch):
    files = official_files(np.random.default_rng(0))
    archive = write_tar(tmp_path / "caltech256" / "256_ObjectCategories.tar", files)
    monkeypatch.setitem(caltech.CALTECH256_MD5, caltech.ARCHIVE, hashlib.md5(archive.read_bytes()).hexdigest())
    a = load_dataset("caltech256", tmp_path, val_fraction=0.0, split_seed=0, download=False, image_size=16)
    b = load_dataset("caltech-256", tmp_path, val_fraction=0.0, split_seed=5, download=False, image_size=16)
    assert a.train.classes == ("ak47", "american-flag", "backpack")  # clutter left out
    assert torch.bincount(a.train.labels).tolist() == [PER_CLASS] * 3
    assert torch.bincount(a.test.labels).tolist() == [6 - PER_CLASS, 5 - PER_CLASS, 7 - PER_CLASS]
    assert torch.equal(a.test.images, b.test.images)  # the test split never depends on split_seed
    # every image is one of the class's files, decoded and resized; train and test partition each class
    by_class = {}
    for name, data in files.items():
        folder = name.split("/")[1]
        if folder in ("001.ak47", "002.american-flag", "003.backpack") and name.endswith(".jpg"):
            by_class.setdefault(list(CATEGORIES).index(folder), []).append(expected_image(data, 16))
    for label, candidates in by_class.items():
        got = [x for split in (a.train, a.test) for x, y in zip(split.images, split.labels) if int(y) == label]
        matched = sorted(next(i for i, c in enumerate(candidates) if torch.equal(g, c)) for g in got)
        assert matched == list(range(len(candidates)))


def test_extracted_folder_equals_the_tar_and_default_size(tmp_path, monkeypatch):
    files = official_files(np.random.default_rng(1))
    archive = write_tar(tmp_path / "tar" / "caltech256" / "256_ObjectCategories.tar", files)
    monkeypatch.setitem(caltech.CALTECH256_MD5, caltech.ARCHIVE, hashlib.md5(archive.read_bytes()).hexdigest())
    for name, data in files.items():
        (tmp_path / "dir" / "caltech256" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "dir" / "caltech256" / name).write_bytes(data)
    from_tar = load_dataset("caltech256", tmp_path / "tar", val_fraction=0.0, download=False)
    from_dir = load_dataset("caltech256", tmp_path / "dir", val_fraction=0.0, download=False)
    assert from_tar.image_shape == (3, caltech.DEFAULT_IMAGE_SIZE, caltech.DEFAULT_IMAGE_SIZE)
    for split in ("train", "test"):
        assert torch.equal(getattr(from_tar, split).images, getattr(from_dir, split).images)
        assert torch.equal(getattr(from_tar, split).labels, getattr(from_dir, split).labels)


def test_missing_corrupt_and_too_small(tmp_path, monkeypatch):
    with pytest.raises(DataError) as err:
        load_dataset("caltech256", tmp_path, download=False)
    assert "256_ObjectCategories.tar" in str(err.value) and "67b4f42ca05d46448c6bb8ecd2220f6d" in str(err.value)

    files = official_files(np.random.default_rng(2))
    archive = write_tar(tmp_path / "caltech256" / "256_ObjectCategories.tar", files)
    with pytest.raises(DataError, match="corrupt"):  # the official MD5: this small archive is not it
        load_dataset("caltech256", tmp_path, download=False)

    monkeypatch.setattr(caltech, "TRAIN_PER_CLASS", 5)  # american-flag has only 5 images: none left for test
    monkeypatch.setitem(caltech.CALTECH256_MD5, caltech.ARCHIVE, hashlib.md5(archive.read_bytes()).hexdigest())
    with pytest.raises(DataError, match="002.american-flag has 5 images"):
        load_dataset("caltech256", tmp_path, download=False)


def test_download_is_md5_checked_and_read_in_place(tmp_path, monkeypatch):
    """download=True fetches the tar from CALTECH256_URL (a file:// URL here): a served file with the wrong MD5 is
    one error that leaves nothing behind; the right one is kept and read in place (nothing extracted)."""
    files = official_files(np.random.default_rng(3))
    served = write_tar(tmp_path / "server" / "256_ObjectCategories.tar", files)
    monkeypatch.setattr(caltech, "CALTECH256_URL", served.as_uri())
    root = tmp_path / "root"
    monkeypatch.setitem(caltech.CALTECH256_MD5, caltech.ARCHIVE, "0" * 32)
    with pytest.raises(DataError) as err:
        load_dataset("caltech256", root, val_fraction=0.0, download=True, image_size=16)
    assert "256_ObjectCategories.tar" in str(err.value) and "0" * 32 in str(err.value)
    assert served.as_uri() in str(err.value)
    assert list((root / "caltech256").iterdir()) == []  # no partial archive, no temporary file

    monkeypatch.setitem(caltech.CALTECH256_MD5, caltech.ARCHIVE, hashlib.md5(served.read_bytes()).hexdigest())
    splits = load_dataset("caltech256", root, val_fraction=0.0, download=True, image_size=16)
    assert [p.name for p in (root / "caltech256").iterdir()] == ["256_ObjectCategories.tar"]
    assert splits.train.classes == ("ak47", "american-flag", "backpack") and len(splits.test) == 9
    assert torch.equal(splits.test.images[0], expected_image(files["256_ObjectCategories/001.ak47/001_0001.jpg"], 16))


def _file_names(split, files: dict[str, bytes], size: int) -> list[str]:
    """The file name (NNN_KKKK) of each image of a split, found by comparing it with every file decoded."""
    decoded = {
        name.rsplit("/", 1)[1][:-4]: expected_image(data, size)
        for name, data in files.items()
        if name.endswith(".jpg") and "257.clutter" not in name
    }
    return [next(n for n, x in decoded.items() if torch.equal(x, image)) for image in split.images]


def test_the_seeded_split_is_pinned(tmp_path, monkeypatch):
    """The exact files of train and test for the fixed seed: a change of the split rule (seed, stream, the order the
    classes draw their permutations, the sorting of file names) fails here, as it would change every result."""
    files = official_files(np.random.default_rng(0))
    archive = write_tar(tmp_path / "caltech256" / "256_ObjectCategories.tar", files)
    monkeypatch.setitem(caltech.CALTECH256_MD5, caltech.ARCHIVE, hashlib.md5(archive.read_bytes()).hexdigest())
    splits = load_dataset("caltech256", tmp_path, val_fraction=0.0, split_seed=3, download=False, image_size=16)
    assert _file_names(splits.train, files, 16) == [
        "001_0002", "001_0004", "001_0005", "002_0003", "002_0004", "002_0005", "003_0003", "003_0004", "003_0005",
    ]  # fmt: skip
    assert _file_names(splits.test, files, 16) == [
        "001_0001", "001_0003", "001_0006", "002_0001", "002_0002", "003_0001", "003_0002", "003_0006", "003_0007",
    ]  # fmt: skip


def test_the_split_at_the_official_size_is_pinned():
    """60 of each class in train at the official size (80 and 97 images here: the smallest classes are 80): the test
    files of both classes, the second drawn after the first from the same stream."""
    found = {
        "001.ak47": [(f"001_{k:04d}.jpg", 0, 0) for k in range(1, 81)],
        "002.american-flag": [(f"002_{k:04d}.jpg", 0, 0) for k in range(1, 98)],
    }
    splits = dict(caltech.scan_caltech256(found, "pinned", train_per_class=60).splits)
    assert [sum(e[1] == label for e in splits["train"]) for label in (0, 1)] == [60, 60]
    test = {label: [e[0][:-4] for e in splits["test"] if e[1] == label] for label in (0, 1)}
    assert test[0] == [
        "001_0002", "001_0003", "001_0004", "001_0006", "001_0014", "001_0015", "001_0018", "001_0020", "001_0022",
        "001_0023", "001_0039", "001_0040", "001_0046", "001_0049", "001_0050", "001_0054", "001_0057", "001_0060",
        "001_0069", "001_0074",
    ]  # fmt: skip
    assert len(test[1]) == 37 and test[1][:10] == [
        "002_0001", "002_0008", "002_0012", "002_0016", "002_0018", "002_0019", "002_0021", "002_0023", "002_0029",
        "002_0038",
    ]  # fmt: skip
    assert test[1][-5:] == ["002_0090", "002_0092", "002_0095", "002_0096", "002_0097"]
