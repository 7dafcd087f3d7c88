"""benchmarks/gpu_smoke.py runs on the CPU at tiny sizes, so the GPU plan cannot rot."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_smoke.py"


def test_every_mnist_preset_trains_a_few_steps():
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--device",
        "cpu",
        "--steps",
        "2",
        "--batch",
        "8",
        "--precision",
        "fp32",
        "--compile",
        "false",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) >= 11 and all(" ok " in line for line in lines), result.stdout
