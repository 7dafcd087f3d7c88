"""The README's multi-node command, run for real on one machine: two network namespaces joined by a veth pair
act as two nodes; `torchrun --nnodes=2 --rdzv_backend=c10d` with one process per node must give the same weights
as the 2-process single-node run. Skipped, with the reason, where namespaces cannot be created (needs root)."""

import os
import shutil
import socket
import subprocess
import sys
import uuid

import pytest
import torch

from probssl.train import load_run

TORCHRUN = os.path.join(os.path.dirname(sys.executable), "torchrun")
TRAIN = [
    "-m",
    "probssl",
    "train",
    "--preset",
    "simclr-digits",
    "--set",
    "train.max_steps=4",
    "--set",
    "train.progress=false",
    "--set",
    "data.train_subset=256",
    "--set",
    "train.batch_size=64",
]


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True)


@pytest.fixture
def two_nodes():
    """(namespace, address, interface) of two hosts on 10.77.x.0/24, removed afterwards."""
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (`ip`) is not installed")
    tag = uuid.uuid4().hex[:6]
    nodes = [(f"probssl-{tag}-{i}", f"10.77.{int(tag[:2], 16)}.{i + 1}", f"pv{tag}{i}") for i in range(2)]
    if _ip("netns", "add", nodes[0][0]).returncode != 0:
        pytest.skip("network namespaces cannot be created here (needs root / CAP_NET_ADMIN)")
    try:
        _ip("netns", "add", nodes[1][0])
        _ip("link", "add", nodes[0][2], "type", "veth", "peer", "name", nodes[1][2])
        for ns, address, iface in nodes:
            for cmd in (
                ["link", "set", iface, "netns", ns],
                ["-n", ns, "addr", "add", f"{address}/24", "dev", iface],
                ["-n", ns, "link", "set", iface, "up"],
                ["-n", ns, "link", "set", "lo", "up"],
            ):
                result = _ip(*cmd)
                assert result.returncode == 0, result.stderr
        yield nodes
    finally:
        for ns, _, _ in nodes:
            _ip("netns", "delete", ns)


def _env(iface: str | None = None) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if iface:
        env["GLOO_SOCKET_IFNAME"] = iface  # gloo talks over the node's own interface
    return env


def _node_command(ns: str, local: str, endpoint: str, is_host: bool, out) -> list[str]:
    # --local_addr and is_host: both namespaces share one hostname, which resolves to neither veth address
    return [
        "ip",
        "netns",
        "exec",
        ns,
        TORCHRUN,
        "--nnodes=2",
        "--nproc_per_node=1",
        f"--local_addr={local}",
        "--rdzv_backend=c10d",
        f"--rdzv_endpoint={endpoint}",
        "--rdzv_id=probssl-test",
        f"--rdzv_conf=is_host={'true' if is_host else 'false'}",
        *TRAIN,
        "--out",
        str(out),
    ]


def test_two_nodes_equal_one_node_with_two_processes(two_nodes, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"{two_nodes[0][1]}:{port}"
    out = tmp_path / "multinode"  # one shared file system, as on a cluster: only rank 0 writes
    procs = [
        subprocess.Popen(
            _node_command(ns, addr, endpoint, rank == 0, out),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(iface),
        )
        for rank, (ns, addr, iface) in enumerate(two_nodes)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    single = subprocess.run(
        [
            TORCHRUN,
            "--nproc_per_node=2",
            "--master_addr=127.0.0.1",
            f"--master_port={free}",
            *TRAIN,
            "--out",
            str(tmp_path / "one-node"),
        ],
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert single.returncode == 0, single.stderr[-3000:]
    a, b = load_run(out)[1].state_dict(), load_run(tmp_path / "one-node")[1].state_dict()
    assert load_run(out)[2].extra["world_size"] == 2 and a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), rtol=1e-5, atol=1e-6), key
