"""Shared fixtures: run the training command in-process (fast) or as a real subprocess."""

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from warm_python import ONE_THREAD_BY_THE_SUITE, PID_FILE_VARIABLE, warm_python

from linear_pl.runner.cli import cli_main

ROOT = Path(__file__).resolve().parent.parent
# Two test workers on two cores: each test process on one thread, in-process and in the processes the
# tests start (set OMP_NUM_THREADS to choose). A second thread mostly spins waiting for work while the
# other worker needs the core (`--preset mlp-sine` alone: 14.5 s of CPU in 9.3 s on two threads, 8.4 s
# in 8.9 s on one). The README's sessions run with the user's default (readme_sessions.py).
if "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = os.environ[ONE_THREAD_BY_THE_SUITE] = "1"
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
# ``PYTHON script.py ...`` runs a script in a process forked from one that has imported Lightning
# (tests/warm_python.py says how, and what differs from a fresh python): 3-4 s less for each.
# sys.executable where a fresh interpreter is what is tested.
PYTHON = warm_python()


def script_pid(pid_file: Path, client: subprocess.Popen, timeout: float = 300) -> int:
    """The pid of the script a ``PYTHON`` client runs, started with ``PID_FILE_VARIABLE`` set to ``pid_file``
    (waits for it; a file reused for another client must be removed before that one starts)."""
    deadline = time.monotonic() + timeout  # a bound only: the client writes it before the script starts
    while not pid_file.exists() or not pid_file.read_text().endswith("\n"):
        if client.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"no pid in {pid_file} ({PID_FILE_VARIABLE}; client status {client.returncode})")
        time.sleep(0.01)
    return int(pid_file.read_text())


# The runner's tests train a plain-Lightning classifier (tests/lit_classifier.py), not the example.
CLASSIFIER = ["--model", "lit_classifier.Classifier", "--data", "lit_classifier.Blobs"]


@dataclass
class Run:
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


def assert_clean(run: "Run") -> None:
    """No library warnings or advertising in a run's output, even with every warning switched on.

    (Lightning prints its own warnings as "file.py:line: message", without the word Warning.)
    """
    output = run.stdout + run.stderr
    assert "Warning" not in run.stderr and "Tip" not in output and "Traceback" not in output, run.stderr
    assert not re.search(r"\.py:\d+: ", output), output


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    """Every test runs in its own directory: a run it starts without --default_root_dir writes nothing here."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def train(tmp_path, capsys):
    """``train(*flags)`` runs ``scripts/train.py`` in this process; --default_root_dir is tmp_path
    unless the flags give one."""

    def run(*flags: str) -> Run:
        root = Path(flags[flags.index("--default_root_dir") + 1]) if "--default_root_dir" in flags else tmp_path
        status = cli_main([*flags, "--default_root_dir", str(root)])
        out, err = capsys.readouterr()
        return Run(status, out, err, root)

    return run


@pytest.fixture
def script(tmp_path):
    """``script(name, *flags)`` runs ``scripts/<name>.py`` as a subprocess in tmp_path (the run's root,
    unless the flags give a --default_root_dir, taken relative to tmp_path)."""

    def run(name: str, *flags: str, timeout: float = 300, cwd: Path | None = None) -> Run:
        env = {**os.environ, "PYTHONWARNINGS": "default"}  # show every warning a user would see
        if cwd is not None and "--default_root_dir" in flags:  # cwd: where class paths are imported from
            at = flags.index("--default_root_dir") + 1
            flags = (*flags[:at], str(tmp_path / flags[at]), *flags[at + 1 :])
        proc = subprocess.run(
            [PYTHON, str(ROOT / "scripts" / f"{name}.py"), *flags],
            cwd=cwd or tmp_path, env=env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        root = tmp_path / flags[flags.index("--default_root_dir") + 1] if "--default_root_dir" in flags else tmp_path
        return Run(proc.returncode, proc.stdout, proc.stderr, root)

    return run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def tensorboard():
    """``tensorboard(logdir)`` starts a server on a free port and returns a GET-JSON function."""
    servers = []

    def start(logdir: Path):
        port = free_port()
        # The legacy loader, reading every event file before the server answers (blocking, once): the
        # default lists a run as soon as it finds it, before it has read its scalars, and a busy
        # machine then served a partial run.
        command = [str(Path(sys.executable).parent / "tensorboard"), "--logdir", str(logdir), "--load_fast", "false",
                   "--reload_interval", "0", "--reload_task", "blocking"]  # fmt: skip
        servers.append(subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip

        def get(path: str, **query: str):
            url = f"http://127.0.0.1:{port}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.loads(response.read())

        deadline = time.monotonic() + 300  # only a bound: starting takes seconds, more on a busy machine
        while True:  # until the server answers: it has read the event files
            try:
                if get("/data/runs"):
                    return get
            except OSError:
                pass
            if time.monotonic() > deadline or servers[-1].poll() is not None:
                raise RuntimeError("tensorboard did not start")
            time.sleep(0.5)

    yield start
    for server in servers:
        server.terminate()
        server.wait(timeout=30)
