"""The README's Python example runs as written (on its own tiny budget)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_python_example_runs(tmp_path, monkeypatch):
    block = re.search(r"## In Python\n\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102  (the project's own README)
    assert (tmp_path / "runs" / "my-vsimclr" / "eval.json").exists()
    assert namespace["u"].shape == (8,) and namespace["q"].batch_shape == (8,)
