"""In-memory labelled image sets and their train/val/test bundle."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from probssl.data.lazy import is_lazy, take_rows

__all__ = ["ImageDataset", "DataSplits", "UNLABELLED"]

#: The label of every image of an unlabelled set (``classes == ()``): negative, so that code which forgets to
#: check :attr:`ImageDataset.labelled` fails (one-hot, scatter) instead of scoring one made-up class.
UNLABELLED = -1


@dataclass(frozen=True, eq=False, repr=False)
class ImageDataset:
    """A labelled image set held entirely in memory.

    Attributes:
        images: uint8 ``[N, C, H, W]``, contiguous, pixel values 0..255 (C is 1 or 3); for a file dataset
            larger than memory a :class:`~probssl.data.lazy.LazyImages`, which decodes the rows it is indexed with.
        labels: int64 ``[N]``, class indices in ``[0, len(classes))``; ``UNLABELLED`` (-1) for every image of an
            unlabelled set.
        classes: human-readable class names; ``classes[k]`` names label ``k``. Empty for an unlabelled set
            (pretraining images without classes: ``unlabelled-folder``, a manifest without labels).
        name: dataset name, e.g. ``"mnist"`` (the same for all splits of one dataset).

    Datasets returned by :func:`probssl.data.load_dataset` are cached and shared between
    callers: treat the tensors as read-only (convert or copy before modifying, e.g.
    ``images.float() / 255``), or every later load in the process sees the change.

    Equality is identity (``eq=False``): comparing tensor fields element-wise is not a
    meaningful ``==`` for a dataclass.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    name: str

    def __post_init__(self) -> None:
        images, labels = self.images, self.labels
        if is_lazy(images):  # decoded from its files when indexed (data.in_memory); checked when decoded
            pass
        elif not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
            raise TypeError(f"images must be a uint8 tensor [N, C, H, W], got {_describe(images)}")
        if not images.is_contiguous():
            raise ValueError("images must be contiguous; call .contiguous() first")
        if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 or labels.dim() != 1:
            raise TypeError(f"labels must be an int64 tensor [N], got {_describe(labels)}")
        if labels.shape[0] != images.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels")
        # A list would be mutable inside a frozen object and unhashable; normalise quietly.
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        if len(self.classes) == 0:
            if labels.numel() and bool((labels != UNLABELLED).any()):
                raise ValueError(f"an unlabelled set (classes empty) has every label {UNLABELLED}")
        elif labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= len(self.classes)):
            raise ValueError(
                f"labels must lie in [0, {len(self.classes)}), got range [{int(labels.min())}, {int(labels.max())}]"
            )

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def labelled(self) -> bool:
        """False for a set without classes (every label ``UNLABELLED``)."""
        return len(self.classes) > 0

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(image uint8 [C, H, W], label int64 [])`` — enough for a torch DataLoader."""
        return self.images[i], self.labels[i]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)``."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, index: torch.Tensor) -> ImageDataset:
        """The images selected by ``index`` (int64 ``[M]`` positions, or bool ``[N]`` mask).

        The result owns fresh copies of the selected rows, so it never aliases this dataset.
        """
        index = torch.as_tensor(index)
        if index.dtype not in (torch.int64, torch.int32, torch.bool):
            raise TypeError(f"index must be an integer or boolean tensor, got {index.dtype}")
        return ImageDataset(
            images=take_rows(self.images, index),
            labels=self.labels[index].contiguous(),
            classes=self.classes,
            name=self.name,
        )

    def __repr__(self) -> str:
        c, h, w = self.image_shape
        return (
            f"ImageDataset(name={self.name!r}, n={len(self)}, image_shape=({c}, {h}, {w}), "
            f"num_classes={len(self.classes)})"
        )


@dataclass(frozen=True, eq=False)
class DataSplits:
    """Train / validation / test splits of one dataset.

    ``val`` is for model selection (hyper-parameters, early stopping); ``test`` is reported
    once and never used for selection. All three share ``classes`` and image shape.
    """

    train: ImageDataset
    val: ImageDataset
    test: ImageDataset

    def __post_init__(self) -> None:
        for split in (self.val, self.test):
            if split.classes != self.train.classes:
                raise ValueError(f"split classes differ: {split.classes} vs {self.train.classes}")
            if split.image_shape != self.train.image_shape:
                raise ValueError(f"split image shapes differ: {split.image_shape} vs {self.train.image_shape}")

    @property
    def num_classes(self) -> int:
        """0 for unlabelled data."""
        return len(self.train.classes)

    @property
    def labelled(self) -> bool:
        """False when the images have no classes (label-needing evaluation is skipped)."""
        return self.train.labelled

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of every image."""
        return self.train.image_shape

    @property
    def name(self) -> str:
        return self.train.name


def _describe(x: object) -> str:
    if isinstance(x, torch.Tensor):
        return f"{x.dtype} tensor of shape {tuple(x.shape)}"
    return type(x).__name__
