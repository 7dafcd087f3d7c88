"""MoCo v2 (Chen, Fan, Girshick, He 2020, "Improved Baselines with Momentum Contrastive Learning").

A query encoder (backbone + 2-layer MLP head, as SimCLR's) and a key encoder that is its exponential moving
average, ``theta_k <- m theta_k + (1 - m) theta_q`` after every optimiser step (the trainer's
``after_optimizer_step`` hook). InfoNCE of each query against its key (the other view of the image) and a queue
of keys from earlier batches as negatives: ``logits = [q.k+, q.queue^T] / tau``, cross-entropy with the positive at
index 0. After the step the batch's keys are enqueued (oldest out).

Under torchrun the keys of every rank are all-gathered before they are enqueued (rank-major, as the batch is
split), so every rank holds the same queue, and 2 processes compute the same loss, gradients and queue as one
process on the global batch (tested; batch norm aside). Deviations from the paper's ImageNet settings, in the
defaults and every preset (MNIST-scale and CIFAR / STL-10 / Tiny-ImageNet alike), because the training sets here are
far smaller than ImageNet: ``queue_size`` 4096 (paper: 65,536, which would approach or exceed these training sets, so
an image's own earlier key would be among its negatives; 4096 is the MoCo repository's CIFAR-10 demo value;
``moco-digits`` uses 1,024 and ``moco-stl10`` 2,048) and ``momentum`` 0.99 (paper: 0.999 over 200 ImageNet epochs;
the CIFAR-10 demo's value, as a run of fewer steps needs a key encoder that follows faster). MoCo's shuffled batch
norm (which hides batch statistics across GPUs) is not implemented: with one process there is nothing to shuffle
across; under torchrun each rank's key encoder normalises its own shard, as in DDP without SyncBatchNorm.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from probssl.config import MethodConfig, spec
from probssl.distributions import PointMass
from probssl.losses import all_gather_no_grad
from probssl.methods.base import Method
from probssl.methods.registry import register_method
from probssl.models import ProjectionHead


@dataclass
class MoCoConfig(MethodConfig):
    temperature: float = spec(0.2, minimum=0.0, exclusive_minimum=True)  # MoCo v2: 0.2
    momentum: float = spec(0.99, minimum=0.0, maximum=1.0)  # paper 0.999 (ImageNet); our choice for short runs
    queue_size: int = spec(4096, minimum=1)  # paper 65,536 (ImageNet); our choice for MNIST-sized data
    symmetric: bool = False  # MoCo v2: one direction (queries of view 0, keys of view 1); true: both, averaged
    gather_distributed: bool = True  # under torchrun, enqueue every rank's keys


def moco_loss(q: Tensor, k: Tensor, queue: Tensor, temperature: float) -> Tensor:
    """InfoNCE with a queue: q, k [N, d] unit vectors (k detached), queue [K, d] -> scalar (float32)."""
    q, k, queue = q.float(), k.float(), queue.float()
    positive = (q * k).sum(-1, keepdim=True)  # [N, 1]
    negative = q @ queue.T  # [N, K]
    logits = torch.cat([positive, negative], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


@register_method
class MoCo(Method):
    name = "moco"
    config_class = MoCoConfig

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        temperature: float = 0.2,
        momentum: float = 0.99,
        queue_size: int = 4096,
        symmetric: bool = False,
        gather: bool = True,
    ):
        super().__init__(backbone)
        self.head = head
        self.key_backbone, self.key_head = copy.deepcopy(backbone), copy.deepcopy(head)
        for p in (*self.key_backbone.parameters(), *self.key_head.parameters()):
            p.requires_grad_(False)
        self.temperature, self.momentum, self.symmetric, self.gather = temperature, momentum, symmetric, gather
        dim = head.out_dim
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self._pending: list[Tensor] = []  # keys of the last forward, enqueued after the optimiser step

    @classmethod
    def from_config(cls, backbone, config, image_shape):
        m, c = config.model, config.method
        head = ProjectionHead(backbone.feature_dim, m.head_hidden_dim, m.embed_dim, num_layers=m.head_layers)
        return cls(
            backbone,
            head,
            temperature=c.temperature,
            momentum=c.momentum,
            queue_size=c.queue_size,
            symmetric=c.symmetric,
            gather=c.gather_distributed,
        )

    def forward_head(self, features: Tensor) -> Tensor:
        """[..., F] backbone features -> [..., d] unit-norm queries."""
        shape = features.shape
        return F.normalize(self.head(features.reshape(-1, shape[-1])), dim=-1).reshape(*shape[:-1], -1)

    @torch.no_grad()
    def keys(self, images: Tensor) -> Tensor:
        """[N, C, H, W] -> [N, d] unit-norm keys of the momentum encoder (no gradient)."""
        return F.normalize(self.key_head(self.key_backbone(images)), dim=-1)

    def loss_terms(self, views, labels=None):
        pairs = [(0, 1), (1, 0)] if self.symmetric else [(0, 1)]
        losses, pending = [], []
        for qi, ki in pairs:
            q = self.forward_head(self.forward_features(views[qi]))
            k = self.keys(views[ki])
            losses.append(moco_loss(q, k, self.queue.clone(), self.temperature))
            pending.append(k)
        self._pending = pending
        return {"moco": sum(losses) / len(losses)}

    @torch.no_grad()
    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        """Momentum update of the key encoder, then enqueue the last batch's keys (every rank's when gathering)."""
        for query, key in ((self.backbone, self.key_backbone), (self.head, self.key_head)):
            for pq, pk in zip(query.parameters(), key.parameters()):
                pk.mul_(self.momentum).add_(pq.detach(), alpha=1 - self.momentum)
        if not self._pending:
            return
        # one gather per direction: rank-major within each, as one process would order the global batch's keys
        keys = torch.cat([all_gather_no_grad(k) if self.gather else k for k in self._pending])
        self._pending = []
        size, ptr = len(self.queue), int(self.queue_ptr)
        index = (ptr + torch.arange(len(keys), device=keys.device)) % size
        self.queue[index[-size:]] = keys[-size:].to(self.queue.dtype)
        self.queue_ptr.fill_((ptr + len(keys)) % size)

    def posterior_from_features(self, features):
        return PointMass(self.forward_head(features))
