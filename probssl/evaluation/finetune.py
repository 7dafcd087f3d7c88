"""Fine-tuning of the whole network: the protocol beside frozen-feature probes.

A copy of the backbone plus a new linear classifier is trained end to end with cross-entropy on the
training split, each batch augmented once with the run's own augmentation recipe. The epoch is
selected on validation accuracy and the test accuracy of that epoch is reported (the test split is
scored every epoch but never used to choose).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from probssl.augment import augmenter_from_config
from probssl.config import Config
from probssl.data import DataSplits, to_float_images
from probssl.methods import Method


@torch.no_grad()
def _accuracy(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int, device) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(images), batch_size):
        logits = model(to_float_images(images[i : i + batch_size].to(device)))
        correct += (logits.argmax(1).cpu() == labels[i : i + batch_size]).sum().item()
    return correct / max(len(images), 1)


def fine_tune(
    method: Method,
    splits: DataSplits,
    config: Config,
    epochs: int = 10,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> dict:
    """Fine-tune ``method.backbone`` (a copy; the method is untouched) with a linear head.

    Returns {test_acc, val_acc, epoch (selected, 1-based), epochs, lr, weight_decay, val_curve, test_curve}.
    """
    torch.manual_seed(seed)
    backbone = copy.deepcopy(method.backbone).to(device)
    model = nn.Sequential(backbone, nn.Linear(backbone.feature_dim, splits.num_classes)).to(device)
    augmenter = augmenter_from_config(config.augment, splits.image_shape)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    images, labels = splits.train.images, splits.train.labels
    n = len(images)
    batch_size = min(batch_size, n)
    steps = epochs * max(1, n // batch_size)
    step, val_curve, test_curve, best = 0, [], [], None
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(n, generator=generator)
        for b in range(max(1, n // batch_size)):
            index = order[b * batch_size : (b + 1) * batch_size]
            x = augmenter(to_float_images(images[index]).to(device), views=1, generator=generator)[0]
            for group in optimizer.param_groups:  # cosine decay without warm-up: the backbone is pretrained
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
            loss = F.cross_entropy(model(x), labels[index].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
        val_curve.append(_accuracy(model, splits.val.images, splits.val.labels, 1024, device))
        test_curve.append(_accuracy(model, splits.test.images, splits.test.labels, 1024, device))
        if best is None or val_curve[-1] > val_curve[best]:
            best = epoch
    return {
        "test_acc": test_curve[best],
        "val_acc": val_curve[best],
        "epoch": best + 1,
        "epochs": epochs,
        "lr": lr,
        "weight_decay": weight_decay,
        "val_curve": val_curve,
        "test_curve": test_curve,
        "protocol": "backbone copy + linear head, AdamW, cosine lr, the run's augmentation (one view), "
        "epoch selected on validation accuracy",
    }
