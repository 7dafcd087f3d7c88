"""One rank of the distributed-equivalence test (run by test_distributed.py, not by pytest).

Computes the loss and parameter gradients of METHOD on this rank's share of a fixed global batch,
wrapped in DistributedDataParallel when WORLD_SIZE > 1, and rank 0 writes them to OUT.
"""

import os
import sys

import torch
import torch.distributed as dist
from safetensors.torch import save_file
from torch.nn.parallel import DistributedDataParallel

from probssl.config import load_config
from probssl.methods import create_method

METHOD, OUT = sys.argv[1], sys.argv[2]
PRESETS = {
    "simclr": "simclr-digits",
    "vsimclr": "vsimclr-digits",
    "supcon": "supcon-digits",
    "vsupcon": "vsupcon-digits",
    "simvae": "simvae-digits",
    "vicreg": "vicreg-digits",
    "moco": "moco-digits",
}
GLOBAL_N, VIEWS, DIM = 16, 2, 16

torch.set_num_threads(1)
rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
if world > 1:
    dist.init_process_group("gloo", rank=rank, world_size=world)
n = GLOBAL_N // world
share = slice(rank * n, (rank + 1) * n)

# The same global noise on every rank; each rank uses the rows of its own images, so the
# posterior samples match those of one process drawing for the whole batch.
gen = torch.Generator().manual_seed(123)
views = torch.rand(VIEWS, GLOBAL_N, 1, 8, 8, generator=gen)
labels = torch.arange(GLOBAL_N) % 4
noise = torch.randn(VIEWS, GLOBAL_N, 64, generator=gen)


def local_noise(shape, dtype, device):
    """Noise for a [V, n, d] or [n, d] batch of this rank, cut from the global noise."""
    d = shape[-1]
    full = noise[..., :d] if len(shape) == 3 else noise[0, :, :d]
    return full[:, share] if len(shape) == 3 else full[share]


config = load_config(PRESETS[METHOD], overrides=[f"model.embed_dim={DIM}", "model.head_hidden_dim=32"])
torch.manual_seed(0)
method = create_method(config, (1, 8, 8)).eval()  # eval BN: each sample's forward is independent of the batch split
model = DistributedDataParallel(method) if world > 1 else method

_randn = torch.randn


def fixed_randn(*shape, **kwargs):
    """Reparameterisation noise for this rank's rows; any other draw is left alone."""
    size = tuple(shape[0]) if len(shape) == 1 and not isinstance(shape[0], int) else shape
    if len(size) in (2, 3) and size[-2] == n:
        return local_noise(size, None, None).to(kwargs.get("dtype") or torch.float32).clone()
    return _randn(*shape, **kwargs)


torch.randn = fixed_randn  # the distributions draw eps with torch.randn(shape, ...)
terms = model(views[:, share], labels[share] if method.supervised else None)
loss = sum(terms.values())
loss.backward()
method.after_optimizer_step(0, 1)  # e.g. MoCo: momentum update and enqueue of every rank's keys
if world > 1:
    # DDP averaged the gradients; the global loss is the mean of the equal-sized local losses.
    loss = loss.detach().clone()
    dist.all_reduce(loss)
    loss /= world
if rank == 0:
    out = {f"grad/{k}": p.grad.contiguous() for k, p in method.named_parameters() if p.grad is not None}
    out["loss"] = loss.detach().reshape(1)
    out.update({f"buffer/{k}": b.contiguous() for k, b in method.named_buffers() if k in ("queue", "queue_ptr")})
    save_file(out, OUT)
if world > 1:
    dist.barrier()
    dist.destroy_process_group()
# Rank 0 has written its result. Skip the interpreter's teardown: in two full-suite CI runs, rank 0 aborted
# there ("terminate called without an active exception", a C++ thread destroyed at exit), never in 25
# isolated runs of this worker. That abort is in process teardown, after the maths this test checks.
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
