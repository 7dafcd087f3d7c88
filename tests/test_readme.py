"""The README's Python example runs as written (on its own tiny budget)."""

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_python_example_runs(tmp_path, monkeypatch):
    block = re.search(r"## In Python\n\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102  (the project's own README)
    assert (tmp_path / "runs" / "my-vsimclr" / "eval.json").exists()
    assert namespace["u"].shape == (8,) and namespace["q"].batch_shape == (8,)


def test_the_own_data_and_backbone_commands_run_as_written(tmp_path):
    """Runs every command of the README's "Your own data and backbone" block in a shell, in order."""
    import os
    import shutil
    import subprocess

    block = re.search(r"## Your own data and backbone\n.*?\n\n((?:    [^\n]*\n)+)", README.read_text(), re.S).group(1)
    script = "\n".join(line[4:] for line in block.splitlines())
    shutil.copytree(README.parent / "examples", tmp_path / "examples")
    bindir = os.path.dirname(sys.executable)
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ["PATH"], "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        ["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert (tmp_path / "runs" / "shapes" / "eval.json").exists()
    assert (tmp_path / "runs" / "shapes-export" / "model.safetensors").exists()
    assert (tmp_path / "runs" / "shapes" / "test.csv").read_text().count("\n") == 25  # header + 24 test images
