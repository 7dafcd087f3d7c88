"""CelebA on a few images in the official layout (img_align_celeba/, list_attr_celeba.txt, list_eval_partition.txt)."""

import hashlib
import io
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from probssl.data import DataError, celeba, list_datasets, load_dataset
from probssl.data.registry import clear_cache

# hair colours per image (Black, Blond, Brown, Gray) and split: two with two colours (dropped by the hair task)
HAIR = [(1, 0, 0, 0), (0, 1, 0, 0), (0, 0, 1, 0), (0, 0, 0, 1), (0, 0, 0, 0), (1, 1, 0, 0), (0, 1, 0, 0), (0, 0, 0, 0),
        (0, 0, 1, 1), (1, 0, 0, 0), (0, 0, 0, 1), (0, 0, 1, 0)]  # fmt: skip
SPLIT = [0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2]


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


def official_files(rng) -> tuple[dict[str, bytes], dict[str, bytes], np.ndarray]:
    n = len(HAIR)
    attrs = rng.choice([-1, 1], (n, 40))
    for i, colours in enumerate(HAIR):
        for attribute, on in zip(celeba.HAIR, colours):
            attrs[i, celeba.CELEBA_ATTRIBUTES.index(attribute)] = 1 if on else -1
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    # the official layout: a count line, the names line (with a trailing space), values padded to width 2
    lines = [str(n), " ".join(celeba.CELEBA_ATTRIBUTES) + " "]
    lines += [name + " " + " ".join(f"{v:2d}" for v in row) for name, row in zip(names, attrs)]
    lists = {
        "list_attr_celeba.txt": ("\r\n".join(lines) + "\r\n").encode(),
        "list_eval_partition.txt": "".join(f"{name} {s}\r\n" for name, s in zip(names, SPLIT)).encode(),
    }
    images = {}
    for name in names:
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=90)
        images[name] = buf.getvalue()
    return lists, images, attrs


def place(root, monkeypatch, lists, images, as_zip: bool):
    folder = root / "celeba"
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in lists.items():
        (folder / name).write_bytes(data)
        monkeypatch.setitem(celeba.CELEBA_MD5, f"celeba/{name}", hashlib.md5(data).hexdigest())
    if as_zip:
        with zipfile.ZipFile(folder / "img_align_celeba.zip", "w", zipfile.ZIP_DEFLATED) as z:
            for name, data in images.items():
                z.writestr(f"img_align_celeba/{name}", data)
        digest = hashlib.md5((folder / "img_align_celeba.zip").read_bytes()).hexdigest()
        monkeypatch.setitem(celeba.CELEBA_MD5, "celeba/img_align_celeba.zip", digest)
    else:
        (folder / "img_align_celeba").mkdir()
        for name, data in images.items():
            (folder / "img_align_celeba" / name).write_bytes(data)


def pixels(data: bytes) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).transpose(2, 0, 1).copy())


@pytest.mark.parametrize("as_zip", [True, False])
def test_hair_colour_task_keeps_images_with_exactly_one_of_five(tmp_path, monkeypatch, as_zip):
    lists, images, _ = official_files(np.random.default_rng(0))
    place(tmp_path, monkeypatch, lists, images, as_zip)
    splits = load_dataset("celeba", tmp_path, download=False)
    assert splits.train.classes == ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair", "none")
    assert splits.image_shape == (3, 218, 178)
    names = sorted(images)
    for split, code in (("train", 0), ("val", 1), ("test", 2)):
        rows = [i for i in range(len(HAIR)) if SPLIT[i] == code and sum(HAIR[i]) <= 1]  # 000006, 000009 dropped
        data = getattr(splits, split)
        assert data.labels.tolist() == [HAIR[i].index(1) if sum(HAIR[i]) else 4 for i in rows]
        assert torch.equal(data.images, torch.stack([pixels(images[names[i]]) for i in rows]))


def test_single_attribute_tasks(tmp_path, monkeypatch):
    lists, images, attrs = official_files(np.random.default_rng(1))
    place(tmp_path, monkeypatch, lists, images, as_zip=False)
    assert not any(name.startswith("celeba-s") for name in list_datasets())  # one family, data.attribute picks
    splits = load_dataset("celeba", tmp_path, download=False, image_size=64, attribute="smiling")
    column = attrs[:, celeba.CELEBA_ATTRIBUTES.index("Smiling")]
    assert splits.train.classes == ("not Smiling", "Smiling") and splits.image_shape == (3, 64, 64)
    assert splits.train.labels.tolist() == [int(column[i] == 1) for i in range(12) if SPLIT[i] == 0]
    assert len(splits.test) == 3  # every image kept
    with pytest.raises(DataError, match="Did you mean 'smiling'"):
        load_dataset("celeba", tmp_path, download=False, image_size=64, attribute="smilling")


def test_missing_files_are_named_with_how_to_get_them(tmp_path, monkeypatch):
    with pytest.raises(DataError) as err:
        load_dataset("celeba", tmp_path)  # download=True cannot help: Google Drive
    message = str(err.value)
    assert "list_attr_celeba.txt" in message and "75e246fa4810816ffd6ee81facbd244c" in message
    assert "mmlab.ie.cuhk.edu.hk" in message and "cannot be downloaded automatically" in message

    lists, images, _ = official_files(np.random.default_rng(2))
    place(tmp_path, monkeypatch, lists, {k: v for k, v in images.items() if k != "000004.jpg"}, as_zip=False)
    with pytest.raises(DataError, match="000004.jpg"):
        load_dataset("celeba", tmp_path, download=False)

    (tmp_path / "celeba" / "list_eval_partition.txt").write_bytes(lists["list_eval_partition.txt"][:-30])
    with pytest.raises(DataError, match="corrupt"):
        load_dataset("celeba", tmp_path, download=False)

    bad = lists["list_attr_celeba.txt"].replace(b"Smiling", b"Smiles")
    (tmp_path / "celeba" / "list_attr_celeba.txt").write_bytes(bad)
    monkeypatch.setitem(celeba.CELEBA_MD5, "celeba/list_attr_celeba.txt", hashlib.md5(bad).hexdigest())
    monkeypatch.setitem(
        celeba.CELEBA_MD5,
        "celeba/list_eval_partition.txt",
        hashlib.md5(lists["list_eval_partition.txt"][:-30]).hexdigest(),
    )
    with pytest.raises(DataError, match="40 attribute names"):
        load_dataset("celeba", tmp_path, download=False)
