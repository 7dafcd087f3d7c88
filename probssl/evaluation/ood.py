"""Out-of-distribution image sets: synthetic ones made from the test split, or another dataset's test split
converted to the in-distribution channels and size."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from probssl.config import Config
from probssl.data import DataError, DataSplits, ImageDataset, list_datasets, load_dataset
from probssl.data.registry import canonical_name, dataset_family
from probssl.evaluation._utils import subsample_rows

__all__ = ["DEFAULT_OOD", "SYNTHETIC_OOD", "adapt_images", "make_ood_images", "other_dataset", "other_dataset_images"]

SYNTHETIC_OOD = {
    "noise": "uniform noise: every pixel i.i.d. uniform on {0, ..., 255}, as many images as the test split",
    "shuffled": "the test images with their pixel positions randomly permuted (one permutation per image, "
    "shared by the channels): the same intensities without spatial structure",
    "inverted": "the test images with inverted intensities, 255 - x",
    "vflip": "the test images flipped upside down (near-OOD: some classes are nearly symmetric)",
}
DEFAULT_OOD = ("noise", "shuffled")


def adapt_images(images: Tensor, shape: tuple[int, int, int]) -> Tensor:
    """uint8 [N, C', H', W'] -> uint8 [N, C, H, W]: grey <-> RGB (ITU-R 601 luma) and bilinear resizing."""
    c, h, w = shape
    x = images.float()
    if x.shape[1] != c:
        x = (
            x.repeat(1, 3, 1, 1)
            if c == 3
            else (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        )
    if tuple(x.shape[-2:]) != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).contiguous()


def other_dataset(spec: str, splits: DataSplits, config: Config | None, split: str = "test") -> ImageDataset:
    """A split of another registered dataset, for OOD detection or zero-shot retrieval.

    ``spec``: a dataset name, or ``NAME@DIR`` to read it from DIR (e.g. ``folder@/data/my-photos``). Without
    ``@DIR`` the data root is the run's ``data.data_dir`` -- unless the run's own dataset lives in a folder of its
    own (``folder``), whose directory holds no other dataset: then $PROBSSL_DATA or the user cache is used.
    """
    name, _, directory = spec.partition("@")
    try:
        key = canonical_name(name)
    except DataError as err:
        raise DataError(
            f"Unknown dataset {name!r} for evaluation: use a synthetic OOD set ({', '.join(SYNTHETIC_OOD)}) or a "
            f"registered dataset ({', '.join(list_datasets())}), optionally as NAME@DIR."
        ) from err
    if key == canonical_name(splits.name) and not directory:
        raise DataError(f"{spec!r} is the in-distribution dataset itself")
    data = config.data if config is not None else Config().data
    if directory:
        root = directory
    elif dataset_family(data.name).data_dir_is_root:
        root = None  # the run's data_dir is its own image folder
    else:
        root = data.data_dir
    if dataset_family(key).data_dir_is_root and not directory:
        raise DataError(f"the {key!r} dataset needs its folder: write it as {key}@/path/to/images")
    loaded = load_dataset(key, root, download=data.download)
    return {"train": loaded.train, "val": loaded.val, "test": loaded.test}[split]


def other_dataset_images(
    spec: str, splits: DataSplits, config: Config | None, split: str = "test"
) -> tuple[Tensor, str]:
    """``other_dataset``'s images converted to the run's channels and size (uint8), and their description."""
    other = other_dataset(spec, splits, config, split)
    images = adapt_images(other.images, splits.image_shape)
    c, h, w = other.image_shape
    desc = f"{split} split of {spec} ({len(other)} images, {c}x{h}x{w}) converted to {'x'.join(map(str, splits.image_shape))}"
    return images, desc


def make_ood_images(
    name: str, splits: DataSplits, config: Config | None = None, seed: int = 0, max_images: int = 10_000
) -> tuple[Tensor, str]:
    """Out-of-distribution images uint8 [M, C, H, W] in the in-distribution shape, and their description.

    ``name``: a synthetic set (:data:`SYNTHETIC_OOD`) made from / like the test split, or a registered dataset
    (``NAME`` or ``NAME@DIR``, see :func:`other_dataset`) whose TEST split is converted to the run's channels
    and size. At most ``max_images`` images (a seeded random subset).
    """
    test = splits.test.images
    g = torch.Generator().manual_seed(seed)
    if name == "noise":
        images = torch.randint(0, 256, test.shape, generator=g, dtype=torch.int64).to(torch.uint8)
        desc = SYNTHETIC_OOD[name]
    elif name == "shuffled":
        n, c, h, w = test.shape
        perm = torch.rand(n, h * w, generator=g).argsort(1)  # one permutation per image
        flat = test.reshape(n, c, h * w)
        images = flat.gather(2, perm[:, None, :].expand(n, c, h * w)).reshape(test.shape).contiguous()
        desc = SYNTHETIC_OOD[name]
    elif name == "inverted":
        images, desc = (255 - test).contiguous(), SYNTHETIC_OOD[name]
    elif name == "vflip":
        images, desc = test.flip(-2).contiguous(), SYNTHETIC_OOD[name]
    else:
        images, desc = other_dataset_images(name, splits, config, split="test")
    if len(images) > max_images:
        images = images[subsample_rows(len(images), max_images, seed)]
    return images, desc
