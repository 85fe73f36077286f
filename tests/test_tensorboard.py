"""The run's TensorBoard scalars, read back through a real TensorBoard server's HTTP API."""

import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest


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


def test_tensorboard_serves_the_final_loss_and_weights(tensorboard_run, tensorboard):
    run = tensorboard_run
    results = run.results
    get = tensorboard(run.run_dir)

    assert get("/data/runs") == ["."]
    tags = get("/data/plugin/scalars/tags")["."]
    assert {"train/loss", "val/loss", "weights/w0", "weights/w1", "weights/bias"} <= set(tags)

    def last(tag: str) -> tuple[int, float]:
        wall_time, step, value = get("/data/plugin/scalars/scalars", run=".", tag=tag)[-1]
        return step, value

    # The progress report writes the loss and weights at the run's last step.
    final = results["global_step"]
    assert last("train/loss") == (final, pytest.approx(results["final_train_loss"], rel=1e-6))
    for i, weight in enumerate(results["learned_weights"]):
        assert last(f"weights/w{i}") == (final, pytest.approx(weight, rel=1e-6))
    assert last("weights/bias") == (final, pytest.approx(results["learned_bias"], rel=1e-6))
    # Lightning writes validation metrics at the step before.
    assert last("val/loss") == (final - 1, pytest.approx(results["final_val_loss"], rel=1e-6))
