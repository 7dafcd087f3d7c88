"""One rank of test_compile.py's DDP test (run by it with RANK / WORLD_SIZE set, not by pytest).

Trains PRESET twice in one process group with the given overrides: eager into OUT/eager, then with
``train.compile=true`` into OUT/compiled (two runs in one launch: process start-up costs more than the runs).
Rank 0 writes OUT/graphs.json: how many graphs dynamo compiled in the compiled run.
"""

import json
import os
import sys
from pathlib import Path

import torch

from probssl.config import load_config
from probssl.train import Trainer, teardown_distributed

PRESET, OUT, OVERRIDES = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]

for compiled in (False, True):
    config = load_config(PRESET, overrides=[*OVERRIDES, f"train.compile={str(compiled).lower()}"])
    torch._dynamo.utils.counters.clear()
    trainer = Trainer(config, OUT / ("compiled" if compiled else "eager"), echo=lambda m: None)
    trainer.fit()
    if compiled and trainer.dist.is_main:
        (OUT / "graphs.json").write_text(json.dumps(torch._dynamo.utils.counters["stats"]["unique_graphs"]))
teardown_distributed(trainer.dist)
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)  # as distributed_worker.py: skip an interpreter teardown that gloo has aborted in before
