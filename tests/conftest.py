"""Shared test setup: one thread per process (CI has 2 cores) and deterministic seeds."""

import os

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def shared_data_dir():
    """Real MNIST / Fashion-MNIST from $PROBSSL_DATA.

    Skipped when the variable is unset (a developer laptop); in CI it is set, and a missing
    file is then a failure, not a skip.
    """
    root = os.environ.get("PROBSSL_DATA")
    if not root:
        pytest.skip("PROBSSL_DATA is not set")
    return root
