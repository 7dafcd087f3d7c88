"""ImageNet on a few images in the ILSVRC (Kaggle) layout and the class-folder layout, through the streaming path."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from probssl.data import DataError, load_dataset
from probssl.data.lazy import is_lazy
from probssl.data.registry import clear_cache

WNIDS = ["n01440764", "n01443537", "n15075141"]


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


def jpeg(rng, shape) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def make_kaggle(root, rng):
    """The ILSVRC layout: train/<wnid>/<wnid>_<k>.JPEG, a flat val/ and LOC_val_solution.csv; returns the files."""
    base = root / "imagenet" / "ILSVRC" / "Data" / "CLS-LOC"
    train, val = [], []
    for label, wnid in enumerate(WNIDS):
        for k in range(2):
            data = jpeg(rng, (20 + 3 * k, 30, 3) if k else (24, 24))  # sizes differ; one grey-scale image
            write(base / "train" / wnid / f"{wnid}_{k}.JPEG", data)
            train.append((data, label))
    lines = ["ImageId,PredictionString"]
    for k in (3, 1, 2, 4):  # the CSV is in no particular order
        wnid = WNIDS[k % 3]
        data = jpeg(rng, (26, 22, 3))
        write(base / "val" / f"ILSVRC2012_val_{k:08d}.JPEG", data)
        lines.append(f"ILSVRC2012_val_{k:08d},{wnid} 1 2 20 21 {wnid} 3 4 10 11")
        val.append((k, data, WNIDS.index(wnid)))
    write(root / "imagenet" / "LOC_val_solution.csv", ("\n".join(lines) + "\n").encode())
    write(root / "imagenet" / "LOC_synset_mapping.txt", "".join(f"{w} name {w}\n" for w in WNIDS).encode())
    return train, [(d, label) for _, d, label in sorted(val)]


def resized(data: bytes, size: int) -> torch.Tensor:
    img = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = img.size
    scale = max(size / w, size / h)
    img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR)
    left, top = (img.size[0] - size) // 2, (img.size[1] - size) // 2
    return torch.from_numpy(np.asarray(img.crop((left, top, left + size, top + size))).transpose(2, 0, 1).copy())


def test_ilsvrc_layout_streams_the_expected_pixels(tmp_path):
    train, test = make_kaggle(tmp_path, np.random.default_rng(0))
    splits = load_dataset("imagenet", tmp_path, val_fraction=0.0, download=False, image_size=16, in_memory=False)
    assert is_lazy(splits.train.images) and is_lazy(splits.test.images)
    assert splits.train.classes == tuple(WNIDS) and splits.image_shape == (3, 16, 16)
    assert splits.train.labels.tolist() == [label for _, label in train]
    assert torch.equal(splits.train.images[:], torch.stack([resized(d, 16) for d, _ in train]))
    assert splits.test.labels.tolist() == [label for _, label in test]
    assert torch.equal(splits.test.images[:], torch.stack([resized(d, 16) for d, _ in test]))
    clear_cache()
    default = load_dataset("ilsvrc2012", tmp_path, val_fraction=0.0, download=False, in_memory=False)
    assert default.image_shape == (3, 224, 224)


def test_class_folder_layout_equals_the_ilsvrc_layout(tmp_path):
    train, test = make_kaggle(tmp_path / "a", np.random.default_rng(1))
    for label, wnid in enumerate(WNIDS):
        for k, (data, _) in enumerate(t for t in train if t[1] == label):
            write(tmp_path / "b" / "imagenet" / "train" / wnid / f"{wnid}_{k}.JPEG", data)
    for k, (data, label) in enumerate(test):
        write(tmp_path / "b" / "imagenet" / "val" / WNIDS[label] / f"ILSVRC2012_val_{k:08d}.JPEG", data)
    a = load_dataset("imagenet", tmp_path / "a", val_fraction=0.0, download=False, image_size=8, in_memory=True)
    b = load_dataset("imagenet", tmp_path / "b", val_fraction=0.0, download=False, image_size=8, in_memory=True)
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.train.labels, b.train.labels)
    order = torch.argsort(b.test.labels, stable=True)
    assert torch.equal(a.test.images[torch.argsort(a.test.labels, stable=True)], b.test.images[order])


def test_missing_layout_and_bad_solution(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset("imagenet", tmp_path, download=False)
    assert "ILSVRC/Data/CLS-LOC" in str(err.value) and "image-net.org" in str(err.value)

    make_kaggle(tmp_path, np.random.default_rng(2))
    solution = tmp_path / "imagenet" / "LOC_val_solution.csv"
    solution.write_text(solution.read_text() + "ILSVRC2012_val_00000009,n01440764 1 1 2 2\n")
    with pytest.raises(DataError, match="ILSVRC2012_val_00000009.JPEG .line 6"):
        load_dataset("imagenet", tmp_path, download=False)
    solution.write_text(solution.read_text().replace("n01440764 1 1 2 2", "n99999999 1 1 2 2"))
    with pytest.raises(DataError, match="line 6 of"):
        load_dataset("imagenet", tmp_path, download=False)
    solution.unlink()
    with pytest.raises(DataError, match="LOC_val_solution.csv"):
        load_dataset("imagenet", tmp_path, download=False)
