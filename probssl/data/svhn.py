"""SVHN (Netzer et al., NeurIPS workshop 2011), the "cropped digits" format 2: ``data.name: svhn``, the usual
out-of-distribution set of a CIFAR run (``eval.ood: [svhn]``), and ``data.name: svhn-extra``, whose training split
is ``train`` followed by ``extra`` (604,388 images: the training set of most SVHN classifiers).

Official files (http://ufldl.stanford.edu/housenumbers/), in ``root/svhn/``:

* ``train_32x32.mat`` (73,257 images) and ``test_32x32.mat`` (26,032): MATLAB v5 files read with
  ``scipy.io.loadmat``; ``X`` is uint8 ``[32, 32, 3, N]`` (row, column, channel, image) and ``y`` is ``[N, 1]``
  with the digit's label, where the digit 0 has label 10 (read as class 0 here);
* ``extra_32x32.mat`` (531,131 easier images, the same format), read only by ``svhn-extra`` (1.6 GB decoded).

Missing files are downloaded (MD5-checked, atomic); every file is MD5-verified (once per process). The
validation split is carved from train by ``data.val_fraction``. The ``.mat`` files hold only numeric arrays
(scipy does not unpickle anything).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .dataset import ImageDataset
from .errors import DataError
from .official import fetch_official
from .paths import resolve_data_dir
from .registry import DatasetFamily, register_dataset

__all__ = ["SVHN_CLASSES", "SVHN_MD5", "SVHN_URL", "read_svhn_mat"]

SVHN_CLASSES = tuple(str(d) for d in range(10))
SVHN_URL = "http://ufldl.stanford.edu/housenumbers/"
# MD5s as torchvision lists them (torchvision/datasets/svhn.py, SVHN.split_list). Looked up at call time, so tests
# can substitute small files.
SVHN_MD5: dict[str, str] = {
    "svhn/train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
    "svhn/test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3",
    "svhn/extra_32x32.mat": "a93ce644f1a588dc4d68dda5feec44a7",
}
_FILES = {
    "svhn": ("svhn/train_32x32.mat", "svhn/test_32x32.mat"),
    "svhn-extra": ("svhn/train_32x32.mat", "svhn/test_32x32.mat", "svhn/extra_32x32.mat"),
}


def read_svhn_mat(path: Path) -> ImageDataset:
    """Images uint8 ``[N, 3, 32, 32]`` and labels int64 ``[N]`` (0..9; the file's 10 is the digit 0).

    Raises:
        DataError naming the file if it is not a readable MATLAB file or lacks the documented ``X`` / ``y``.
    """
    fix = f"It is not the official file: replace it with {path.name} from {SVHN_URL}."
    try:
        from scipy.io import loadmat
    except ImportError as exc:  # scipy is a dependency of probssl; a broken install should still say what to do
        raise DataError("Reading SVHN's .mat files needs scipy: pip install scipy") from exc
    try:
        mat = loadmat(path, variable_names=("X", "y"))
    except (ValueError, TypeError, OSError, NotImplementedError) as exc:
        raise DataError(f"SVHN file {path} could not be read as a MATLAB file ({exc}). {fix}") from exc
    x, y = mat.get("X"), mat.get("y")
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        got = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else "nothing"
        raise DataError(f"SVHN file {path} should hold uint8 images X [32, 32, 3, N] but holds {got}. {fix}")
    if not isinstance(y, np.ndarray) or y.size != x.shape[3] or y.dtype.kind not in "iuf":
        raise DataError(f"SVHN file {path} should hold {x.shape[3]} numeric labels y [N, 1]. {fix}")
    labels = y.reshape(-1).astype(np.int64)
    if labels.size and (labels.min() < 1 or labels.max() > 10):
        raise DataError(f"SVHN file {path} has labels outside 1..10. {fix}")
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1))  # [H, W, C, N] -> [N, C, H, W]
    return ImageDataset(torch.from_numpy(images), torch.from_numpy(labels % 10), SVHN_CLASSES, "svhn")


def _locator(name: str):
    def locate(data_dir, download: bool) -> tuple:
        root = resolve_data_dir(data_dir)
        paths = []
        for rel in _FILES[name]:
            url = SVHN_URL + rel.split("/")[1]
            paths.append(str(fetch_official(root, rel, SVHN_MD5[rel], (url,), download=download)))
        return (tuple(paths), tuple(SVHN_MD5[rel] for rel in _FILES[name]))

    return locate


def _decode(source: tuple) -> tuple[ImageDataset, None, ImageDataset]:
    """``(train, None, test)``; with ``extra_32x32.mat`` located too, train is train followed by extra."""
    train, test, *extra = (read_svhn_mat(Path(p)) for p in source[0])
    if extra:
        images, labels = torch.cat([train.images, extra[0].images]), torch.cat([train.labels, extra[0].labels])
        train = ImageDataset(images, labels, SVHN_CLASSES, "svhn-extra")
        test = ImageDataset(test.images, test.labels, SVHN_CLASSES, "svhn-extra")
    return train, None, test


_DESCRIPTIONS = {
    "svhn": "SVHN cropped digits (32x32), the official .mat files; the usual OOD set of CIFAR runs",
    "svhn-extra": "SVHN cropped digits (32x32) with train = train + extra (604,388 images), test = test",
}
for _name, _files in _FILES.items():
    register_dataset(
        DatasetFamily(
            _name,
            _locator(_name),
            _decode,
            description=_DESCRIPTIONS[_name],
            files=tuple((rel, SVHN_MD5[rel]) for rel in _files),
            urls=(SVHN_URL,),
        )
    )
