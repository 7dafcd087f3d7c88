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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With PROBSSL_REQUIRE_BROWSER=1 (CI sets it once Chromium is installed) a browser check that skips is a
    failure: a check that cannot find the browser it was given must not pass CI silently."""
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or os.environ.get("PROBSSL_REQUIRE_BROWSER") != "1":
        return
    reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if "chromium" in reason.lower():
        report.outcome = "failed"
        report.longrepr = f"PROBSSL_REQUIRE_BROWSER=1, but this browser check skipped: {reason}"
