"""Every code block of the README runs as written (on a tiny budget), or is listed below with the reason it cannot
run here. A new block that is neither run nor listed fails :func:`test_every_readme_command_is_run_or_listed`."""

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from probssl.cli.main import main

README = Path(__file__).resolve().parents[1] / "README.md"

# The README's stated convention (section "Command line"): each training command gets this budget, each
# evaluation --quick. The same budget on every command of a run keeps its config the same, so --resume works.
TINY_TRAIN = "--set data.train_subset=128 --set train.batch_size=64 --set train.max_steps=4"

# Commands (by how they start) that cannot run in a test here, with the reason.
NOT_RUN = {
    "make demo": "creates a venv and trains + evaluates two presets at their full budget (minutes); the same job "
    "is `probssl demo`, whose code tests/cli/test_demo.py runs at 2 epochs",
    "make test": "runs this whole test suite, this test included",
    "probssl demo": "trains and evaluates two presets at their full budget (minutes); tests/cli/test_demo.py runs "
    "the demo at 2 epochs",
    "python3 benchmarks/peer_setup.py": "installs lightly into a venv of its own (network, minutes)",
    "make bench": "a throughput benchmark of several minutes",
    "python benchmarks/eval_speed.py": "a timing benchmark on 60,000 x 128 features (budget 60 s)",
    "python benchmarks/reproduce.py": "every method x 3 seeds on MNIST (hours; needs the MNIST files)",
    "python benchmarks/uncertainty.py": "every score x protocol on MNIST (hours; needs the MNIST files)",
    "python benchmarks/streaming.py": "writes and decodes 20,000 JPEGs and times ResNet-18 steps (minutes); "
    "tests/test_streaming_benchmark.py runs it at a tiny size",
    "python benchmarks/monitor_cost.py": "trains the digits presets 6 times (minutes); "
    "tests/test_monitor_cost_benchmark.py runs it at a tiny size",
    "python benchmarks/paper_protocols.py": "builds and steps all 36 paper-protocol presets (minutes); "
    "tests/test_paper_protocols.py runs a subset",
    "make docs": "installs the docs extra and builds the site; CI runs it, and tests/test_docs.py builds the site",
    "torchrun --nnodes=2": "needs two machines; tests/train/test_multinode.py runs this form on one machine split "
    "into two network namespaces",
    "config → data": "the diagram of the package's layers, not a command",
}
# Blocks (by their first command) that a test of their own below runs exactly as written.
OWN_TEST = {
    "export PYTHONPATH=examples": "test_the_own_data_and_backbone_commands_run_as_written",
    "import probssl": "test_the_python_example_runs",
}


def readme_blocks(text: str) -> list[list[str]]:
    """The commands of every code block: fenced ``` blocks and 4-space indented ones. A backslash continues a
    command on the next line; comment lines and trailing ``# comments`` are dropped."""
    blocks, current, fenced, indented, previous = [], [], False, False, ""
    for line in [*text.splitlines(), ""]:
        if line.startswith("```"):
            if fenced:
                blocks.append(current)
            fenced, current = not fenced, []
            continue
        if fenced:
            current.append(line)
        elif line.startswith("    ") and (indented or not previous.strip()):
            indented = True
            current.append(line[4:])
        elif indented:
            blocks.append(current)
            indented, current = False, []
        previous = line
    commands = []
    for block in blocks:
        joined = "\n".join(block).replace("\\\n", " ")
        lines = [re.sub(r"\s+#\s.*$", "", line).strip() for line in joined.splitlines()]
        commands.append([" ".join(line.split()) for line in lines if line and not line.startswith("#")])
    return [c for c in commands if c]


def _tiny(command: str) -> str:
    if command.startswith("probssl train") or " -m probssl train" in command:
        return f"{command} {TINY_TRAIN}"
    if command.startswith("probssl eval") and "--quick" not in command and "--full" not in command:
        return f"{command} --quick"
    return command


def _runnable() -> list[str]:
    out = []
    for block in readme_blocks(README.read_text()):
        if any(block[0].startswith(key) for key in OWN_TEST):
            continue
        out += [c for c in block if not any(c.startswith(key) for key in NOT_RUN)]
    return out


def test_every_readme_command_is_run_or_listed():
    commands = [c for block in readme_blocks(README.read_text()) for c in block]
    for key in [*NOT_RUN, *OWN_TEST]:  # no stale entry: each names a command the README still has
        assert any(c.startswith(key) for c in commands), f"{key!r} is no longer in the README"
    runnable = _runnable()
    assert all(c.split()[0] in {"probssl", "torchrun"} for c in runnable), runnable  # else: list it above
    assert len(runnable) >= 12, runnable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_readme_commands_run_in_order(tmp_path):
    """Command line, Scaling out (one machine) and Resuming, in order, as a user would type them: one shell each,
    except the commands that only print (presets, methods, runs), which go through the same ``main`` in-process."""
    bindir = os.path.dirname(sys.executable)
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ["PATH"], "OMP_NUM_THREADS": "1"}
    env["PET_MASTER_PORT"] = str(_free_port())  # torchrun's --master_port, so parallel jobs do not collide
    for command in _runnable():
        if command.split()[:2] in (["probssl", "presets"], ["probssl", "methods"], ["probssl", "runs"]):
            # they only print: run in this process through the same entry point (saves ~6 s of start-up each)
            cwd = os.getcwd()
            try:
                os.chdir(tmp_path)
                assert main(shlex.split(command)[1:]) == 0, command
            finally:
                os.chdir(cwd)
            continue
        result = subprocess.run(
            ["bash", "-e", "-c", _tiny(command)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    runs = tmp_path / "runs"
    steps = [
        r["step"] for r in map(json.loads, (runs / "vm" / "metrics.jsonl").read_text().splitlines()) if "loss" in r
    ]
    assert steps == [2, 4]  # the last step of each run is logged: 1 epoch of 2 steps, continued for 1 epoch more
    assert json.loads((runs / "vm" / "eval.json").read_text())["run"]["step"] == 4
    assert (tmp_path / "reports" / "vm" / "report.md").exists() and (tmp_path / "vm-test.npz").exists()
    assert (tmp_path / "exported" / "vm" / "model.safetensors").exists()
    for run in ("vm", "ddp", "r"):
        assert json.loads((runs / run / "status.json").read_text())["status"] == "finished", run


def test_the_python_example_runs(tmp_path, monkeypatch):
    block = re.search(r"## In Python\n\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102  (the project's own README)
    assert (tmp_path / "runs" / "my-vsimclr" / "eval.json").exists()
    assert namespace["u"].shape == (8,) and namespace["q"].batch_shape == (8,)


def test_the_own_data_and_backbone_commands_run_as_written(tmp_path):
    """Runs every command of the README's "Your own data and backbone" block in a shell, in order."""
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
