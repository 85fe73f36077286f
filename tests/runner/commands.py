"""How the runner's tests run the commands, and what a command left.

In this process by default, as Lightning's own CLI tests do: train.py, predict.py and sweep.py are each a
function that takes the command line and returns the exit status (conftest.py's ``train`` and ``sweep``). A
process only where a process is what is tested: a signal from outside, a kill, DDP's ranks, the sweep's
workers, what a fresh interpreter prints (``script_command``, with ``process_env``)."""

import io
import json
import os
import re
import socket
import sys
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the project: scripts/, tests/
TESTS = ROOT / "tests"  # on a process's path: it imports runner.lit_classifier from there, as the tests do


@dataclass
class Run:
    """A command's exit status, what it printed, and the root its runs went to (lightning_logs/ beneath)."""

    status: int
    stdout: str
    stderr: str
    root: Path

    @property
    def run_dir(self) -> Path:
        versions = sorted((self.root / "lightning_logs").glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
        return versions[-1]

    @property
    def results(self) -> dict:
        return json.loads((self.run_dir / "results.json").read_text())


def assert_clean(run: Run) -> None:
    """No library warnings or advertising in a run's output.

    (Lightning prints its own warnings as "file.py:line: message", without the word Warning.) In this process,
    Lightning's log lines (its "Tip"s) go to the stream they found at import, not to what the test captures:
    only a process shows everything a user sees."""
    output = run.stdout + run.stderr
    assert "Warning" not in run.stderr and "Tip" not in output and "Traceback" not in output, run.stderr
    assert not re.search(r"\.py:\d+: ", output), output


def run_quietly(main: Callable[[list[str]], int], *flags: str, root: Path) -> Run:
    """``main(flags)`` in this process (train.py's ``cli_main``, the sweep's ``main``), what it printed captured:
    for a fixture that several tests share, which pytest's capsys cannot serve."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = main(list(flags))
    return Run(status, out.getvalue(), err.getvalue(), root)


def script_command(name: str, *flags: str) -> list[str]:
    """``python scripts/NAME.py FLAGS``, as a user starts it (this venv's python)."""
    return [sys.executable, str(ROOT / "scripts" / f"{name}.py"), *flags]


def process_env(**variables: str) -> dict[str, str]:
    """This environment with tests/ on the path (a process imports the test classes from there) and ``variables``."""
    path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **variables}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on, for a server a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
