"""Set up the separate virtualenv that runs the lightly peer of ``benchmarks/throughput.py``.

    python3 benchmarks/peer_setup.py [--venv /work/bench-venv]

probssl itself never depends on lightly or torchvision. The peer runs in its own venv so that
nothing here can touch the project's environment:

1. ``python3 -m venv VENV`` (a fresh one, no system site-packages);
2. ``pip install torch==2.13.0`` first and alone (the CPU build the project tests on);
3. ``pip install -c constraints.txt lightly`` -- the constraints file pins torch, so the resolver
   cannot swap in a CUDA torch;
4. check that ``pip list`` shows no ``nvidia-*`` package (else the venv is removed and the
   benchmark falls back to its PIL peer, ``--peer pil``);
5. check that lightly imports (see :func:`define_torchvision_op_stubs`).

lightly 1.6 pulls torchvision 0.28, whose PyPI wheel is a CUDA build: its compiled ops library
cannot load against CPU torch, and ``import torchvision`` then fails in its fake-kernel
registrations for ``torchvision::nms`` / ``torchvision::qnms`` ("operator does not exist").
Defining those two operator schemas with ``torch.library`` before the import lets it load. The
SimCLR transforms and NT-Xent loss the benchmark uses never call either op.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VENV = os.environ.get("PROBSSL_BENCH_VENV", "/work/bench-venv")
TORCH = "torch==2.13.0"

_STUB_LIBRARY = None  # keep the torch.library.Library alive: its definitions die with it


def define_torchvision_op_stubs() -> None:
    """Define the ``torchvision::nms`` and ``torchvision::qnms`` schemas (no kernels) so that a
    CUDA torchvision wheel imports on CPU torch. Call before importing torchvision or lightly."""
    global _STUB_LIBRARY
    import torch

    if _STUB_LIBRARY is not None:
        return
    try:
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor qdets, Tensor scores, Tensor qscale, Tensor zero_point, float iou_threshold) -> Tensor")
    except RuntimeError:  # already defined (torchvision's own ops loaded, e.g. a CPU build)
        return
    _STUB_LIBRARY = lib


def venv_python(venv: str | Path) -> Path:
    return Path(venv) / "bin" / "python"


def _pip(python: Path, *args: str) -> None:
    cmd = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def setup(venv: Path, force: bool = False) -> bool:
    """Create ``venv`` with CPU torch + lightly. Returns False (and removes it) if that would
    need CUDA packages or lightly does not import."""
    python = venv_python(venv)
    if force and venv.exists():
        shutil.rmtree(venv)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    _pip(python, TORCH)
    _pip(python, "-c", str(ROOT / "constraints.txt"), "lightly")
    listing = subprocess.run(
        [str(python), "-m", "pip", "list", "--disable-pip-version-check"], check=True, capture_output=True, text=True
    ).stdout
    cuda = [line.split()[0] for line in listing.splitlines() if line.lower().startswith(("nvidia", "cuda"))]
    if cuda:
        print(
            f"lightly pulled CUDA packages ({', '.join(cuda)}): removing {venv}; throughput.py will use its PIL peer."
        )
        shutil.rmtree(venv)
        return False
    probe = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); import peer_setup; peer_setup.define_torchvision_op_stubs(); "
        "import torch, torchvision, lightly; from lightly.transforms import SimCLRTransform; "
        "from lightly.loss import NTXentLoss; "
        "print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'lightly', lightly.__version__)"
    )
    result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
    if result.returncode != 0:
        print(result.stderr[-2000:])
        print(f"lightly does not import in {venv}: removing it; throughput.py will use its PIL peer.")
        shutil.rmtree(venv)
        return False
    print(result.stdout.strip())
    print(f"peer venv ready: {venv}")
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--venv", default=DEFAULT_VENV, help="where to create it (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="delete and recreate an existing venv")
    args = parser.parse_args()
    sys.exit(0 if setup(Path(args.venv), force=args.force) else 1)


if __name__ == "__main__":
    main()
