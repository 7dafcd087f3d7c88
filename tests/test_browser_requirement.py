"""tests/conftest.py: with PROBSSL_REQUIRE_BROWSER=1 (CI, once Chromium is installed) a browser check that skips
fails the run; other skips, and runs without the variable, are unchanged."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

SAMPLE = """
import pytest

@pytest.mark.skipif(True, reason="needs Chromium for the browser check")
def test_browser(): pass

@pytest.mark.skipif(True, reason="PROBSSL_DATA is not set")
def test_other(): pass
"""


def _run(tmp_path: Path, require: bool) -> subprocess.CompletedProcess:
    shutil.copy(Path(__file__).parent / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {k: v for k, v in os.environ.items() if k != "PROBSSL_REQUIRE_BROWSER"}
    if require:
        env["PROBSSL_REQUIRE_BROWSER"] = "1"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", str(tmp_path)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)


def test_a_skipped_browser_check_fails_when_the_browser_is_required(tmp_path):
    result = _run(tmp_path, require=True)
    assert result.returncode != 0
    assert "PROBSSL_REQUIRE_BROWSER=1, but this browser check skipped" in result.stdout
    assert "1 skipped" in result.stdout  # the unrelated skip stays a skip


def test_without_the_variable_both_skip(tmp_path):
    result = _run(tmp_path, require=False)
    assert result.returncode == 0 and "2 skipped" in result.stdout
