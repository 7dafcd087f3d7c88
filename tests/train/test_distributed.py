"""Data parallelism must not change the maths: 2 gloo processes == 1 process on the same global batch."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

WORKER = Path(__file__).with_name("distributed_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(method: str, world: int, out: Path) -> dict:
    port = _free_port()
    procs = []
    for rank in range(world):
        env = {
            **os.environ,
            "RANK": str(rank),
            "WORLD_SIZE": str(world),
            "LOCAL_RANK": str(rank),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "OMP_NUM_THREADS": "1",
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, str(WORKER), method, str(out)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    return load_file(str(out))


@pytest.mark.parametrize("method", ["simclr", "vsimclr", "supcon", "simvae", "vicreg", "moco"])
def test_two_processes_equal_one_process(method, tmp_path):
    single = _run(method, 1, tmp_path / "single.safetensors")
    double = _run(method, 2, tmp_path / "double.safetensors")
    assert torch.allclose(single["loss"], double["loss"], rtol=1e-5, atol=1e-6), (single["loss"], double["loss"])
    assert single.keys() == double.keys() and len(single) > 5
    for key in single:
        assert torch.allclose(single[key], double[key], rtol=1e-4, atol=1e-6), key


def test_gathering_changes_the_loss_when_turned_off(tmp_path):
    """Sanity check that the test can fail: without gathering, negatives differ from one process."""
    import torch.nn.functional as F

    from probssl.losses import nt_xent

    z1, z2 = F.normalize(torch.randn(8, 4), dim=1), F.normalize(torch.randn(8, 4), dim=1)
    halves = (nt_xent(z1[:4], z2[:4]) + nt_xent(z1[4:], z2[4:])) / 2
    assert not torch.allclose(halves, nt_xent(z1, z2))
