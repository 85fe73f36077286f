"""The runner's fixtures: each test in a directory of its own, the commands run in this process (``train``,
``sweep``) or, where a process is what is tested, as one (``script``), and a real TensorBoard server."""

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import typeshed_client

from linear_pl.runner.cli import cli_main
from runner.commands import Run, free_port, process_env, script_command


@pytest.fixture(scope="session", autouse=True)
def stub_search_in_this_process():
    """jsonargparse's stub resolver (for a list of loggers, say) asks typeshed_client (jsonargparse[signatures])
    where to look, whose default starts a new interpreter to print its sys.path: this process's path instead."""
    search = typeshed_client.get_search_context

    def here(**kwargs):
        return search(**{"search_path": [Path(p) for p in sys.path if p], **kwargs})

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(typeshed_client, "get_search_context", here)
        yield


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
def sweep(tmp_path, capsys):
    """``sweep(*flags, space=TEXT)`` runs ``scripts/sweep.py`` in this process, in tmp_path, on space.yaml
    (TEXT, when given)."""

    def run(*flags: str, space: str | None = None) -> Run:
        from linear_pl.sweep import main as sweep_main  # noqa: PLC0415 -- a project without the sweep has no such package

        if space is not None:
            (tmp_path / "space.yaml").write_text(space)
        status = sweep_main(["--space", "space.yaml", *flags])
        out, err = capsys.readouterr()
        return Run(status, out, err, tmp_path)

    return run


@pytest.fixture
def script(tmp_path):
    """``script(name, *flags)`` runs ``scripts/<name>.py`` as a process in tmp_path, every warning shown, as a
    user runs it (the run's root is tmp_path, unless the flags give a --default_root_dir, taken relative to it)."""

    def run(name: str, *flags: str, timeout: float = 600) -> Run:
        env = process_env(PYTHONWARNINGS="default")
        done = subprocess.run(script_command(name, *flags), cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip
        root = tmp_path / flags[flags.index("--default_root_dir") + 1] if "--default_root_dir" in flags else tmp_path
        return Run(done.returncode, done.stdout, done.stderr, root)

    return run


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
