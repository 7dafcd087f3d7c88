"""What `train.precision: auto` sees on this machine: the CPU's bf16 flags, the bf16 vs fp32 matmul probe (not
cached), and the choice with its reason.

    OMP_NUM_THREADS=2 python benchmarks/precision_probe.py
"""

import json
import os

import torch

os.environ["PROBSSL_PRECISION_PROBE"] = "0"  # measure now, do not read the cache

from probssl.train.device import bf16_matmul_probe, choose_precision, cpu_bf16_capability  # noqa: E402

print(
    json.dumps(
        {
            "cpu": cpu_bf16_capability(),
            "probe": bf16_matmul_probe(),
            "choice": choose_precision("auto", torch.device("cpu")).__dict__,
        },
        indent=1,
        default=str,
    )
)
