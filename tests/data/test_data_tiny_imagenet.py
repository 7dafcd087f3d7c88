"""Tiny-ImageNet-200 on a small zip in the official layout (wnids.txt, train/<wnid>/images/, val_annotations.txt)."""

import hashlib
import io
import pickle
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from probssl.data import DataError, load_dataset, tiny_imagenet
from probssl.data.lazy import is_lazy
from probssl.data.official import ZipMemberRef
from probssl.data.registry import clear_cache

WNIDS = ["n02124075", "n01443537", "n04067472"]  # wnids.txt is not sorted; the classes are
TOP = "tiny-imagenet-200"


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


def jpeg(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def decoded(data: bytes) -> np.ndarray:
    """What the reader must return for a JPEG: Pillow's decoding, as RGB, [C, H, W]."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).transpose(2, 0, 1)


def official_members(rng) -> tuple[dict[str, bytes], list, list]:
    members = {f"{TOP}/wnids.txt": ("\n".join(WNIDS) + "\n").encode()}
    members[f"{TOP}/words.txt"] = b"n01443537\tgoldfish, Carassius auratus\nn00001740\tentity\n"
    train, test = [], []
    for wnid in WNIDS:
        label = sorted(WNIDS).index(wnid)
        boxes = []
        for k in range(3):
            shape = (64, 64) if (wnid, k) == ("n01443537", 1) else (64, 64, 3)  # one grey-scale JPEG, as in the set
            data = jpeg(rng.integers(0, 256, shape, dtype=np.uint8))
            members[f"{TOP}/train/{wnid}/images/{wnid}_{k}.JPEG"] = data
            boxes.append(f"{wnid}_{k}.JPEG\t0\t0\t63\t63")
            train.append((wnid, k, data, label))
        members[f"{TOP}/train/{wnid}/{wnid}_boxes.txt"] = "\n".join(boxes).encode()
    lines = []
    for k in range(5):
        wnid = WNIDS[(k * 2) % 3]
        data = jpeg(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
        members[f"{TOP}/val/images/val_{k}.JPEG"] = data
        lines.append(f"val_{k}.JPEG\t{wnid}\t1\t2\t60\t61")
        test.append((data, sorted(WNIDS).index(wnid)))
    members[f"{TOP}/val/val_annotations.txt"] = ("\n".join(lines) + "\n").encode()
    members[f"{TOP}/test/images/test_0.JPEG"] = jpeg(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    return members, train, test


def write_zip(path, members, compression=zipfile.ZIP_DEFLATED):
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def check(splits, train, test):
    assert splits.train.classes == tuple(sorted(WNIDS)) and splits.image_shape == (3, 64, 64)
    # train is in class order, then file order
    expected = sorted(train, key=lambda t: (t[3], t[1]))
    assert splits.train.labels.tolist() == [t[3] for t in expected]
    assert torch.equal(splits.train.images, torch.from_numpy(np.stack([decoded(t[2]) for t in expected])))
    assert splits.test.labels.tolist() == [label for _, label in test]
    assert torch.equal(splits.test.images, torch.from_numpy(np.stack([decoded(d) for d, _ in test])))


@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED])
def test_read_in_place_from_the_zip(tmp_path, monkeypatch, compression):
    members, train, test = official_members(np.random.default_rng(0))
    archive = write_zip(tmp_path / "tiny-imagenet" / "tiny-imagenet-200.zip", members, compression)
    monkeypatch.setitem(
        tiny_imagenet.TINY_IMAGENET_MD5, tiny_imagenet.ARCHIVE, hashlib.md5(archive.read_bytes()).hexdigest()
    )
    check(load_dataset("tiny-imagenet", tmp_path, val_fraction=0.0, download=False), train, test)
    clear_cache()
    lazy = load_dataset("tiny_imagenet_200", tmp_path, val_fraction=0.0, download=False, in_memory=False)
    assert is_lazy(lazy.train.images)
    memory = load_dataset("tiny-imagenet", tmp_path, val_fraction=0.0, download=False, in_memory=True)
    for split in ("train", "test"):
        assert torch.equal(getattr(lazy, split).images[:], getattr(memory, split).images)
    # a zip member reference survives pickling (DataLoader workers receive it)
    ref = lazy.train.images.paths[0]
    assert isinstance(ref, ZipMemberRef) and pickle.loads(pickle.dumps(ref)).read() == ref.read()


def test_extracted_folder_gives_the_same_dataset(tmp_path):
    members, train, test = official_members(np.random.default_rng(1))
    for name, data in members.items():
        path = tmp_path / "tiny-imagenet" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    check(load_dataset("tiny-imagenet", tmp_path, val_fraction=0.0, download=False), train, test)


def test_missing_archive_and_broken_layout(tmp_path, monkeypatch):
    with pytest.raises(DataError) as err:
        load_dataset("tiny-imagenet", tmp_path, download=False)
    assert "tiny-imagenet-200.zip" in str(err.value) and "90528d7ca1a48142e341f4ef8d21d0de" in str(err.value)

    members, _, _ = official_members(np.random.default_rng(2))
    del members[f"{TOP}/val/images/val_3.JPEG"]
    archive = write_zip(tmp_path / "tiny-imagenet" / "tiny-imagenet-200.zip", members)
    monkeypatch.setitem(
        tiny_imagenet.TINY_IMAGENET_MD5, tiny_imagenet.ARCHIVE, hashlib.md5(archive.read_bytes()).hexdigest()
    )
    with pytest.raises(DataError) as err:
        load_dataset("tiny-imagenet", tmp_path, download=False)
    assert "val_3.JPEG" in str(err.value) and "line 4" in str(err.value)

    members[f"{TOP}/val/images/val_3.JPEG"] = b"x"
    members[f"{TOP}/val/val_annotations.txt"] += b"val_3.JPEG\tn99999999\t0\t0\t1\t1\n"
    write_zip(archive, members)
    monkeypatch.setitem(
        tiny_imagenet.TINY_IMAGENET_MD5, tiny_imagenet.ARCHIVE, hashlib.md5(archive.read_bytes()).hexdigest()
    )
    with pytest.raises(DataError, match="n99999999"):
        load_dataset("tiny-imagenet", tmp_path, download=False)


def test_download_is_md5_checked_and_read_in_place(tmp_path, monkeypatch):
    """download=True fetches the zip from TINY_IMAGENET_URL (a file:// URL here): a served file with the wrong MD5 is
    one error that leaves nothing behind; the right one is kept and read in place (nothing extracted)."""
    members, train, test = official_members(np.random.default_rng(3))
    served = write_zip(tmp_path / "server" / "tiny-imagenet-200.zip", members)
    monkeypatch.setattr(tiny_imagenet, "TINY_IMAGENET_URL", served.as_uri())
    root = tmp_path / "root"
    monkeypatch.setitem(tiny_imagenet.TINY_IMAGENET_MD5, tiny_imagenet.ARCHIVE, "0" * 32)
    with pytest.raises(DataError) as err:
        load_dataset("tiny-imagenet", root, val_fraction=0.0, download=True)
    assert (
        "tiny-imagenet-200.zip" in str(err.value) and "0" * 32 in str(err.value) and served.as_uri() in str(err.value)
    )
    assert list((root / "tiny-imagenet").iterdir()) == []  # no partial archive, no temporary file

    md5 = hashlib.md5(served.read_bytes()).hexdigest()
    monkeypatch.setitem(tiny_imagenet.TINY_IMAGENET_MD5, tiny_imagenet.ARCHIVE, md5)
    check(load_dataset("tiny-imagenet", root, val_fraction=0.0, download=True), train, test)
    assert [p.name for p in (root / "tiny-imagenet").iterdir()] == ["tiny-imagenet-200.zip"]
