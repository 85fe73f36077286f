"""``serve``: the fixture classifier behind a real server process, started once for the module: 16 concurrent
clients get ``predict``'s answers, bad input is refused alone (400, 422, 413) and the server goes on, and a dead
inference worker is never reported healthy. What is refused before a server starts is tested in this process."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from linear_pl.runner.cli import cli_main
from linear_pl.runner.serve import call
from runner.commands import Run, assert_clean, free_port, process_env, run_quietly, script_command
from runner.lit_classifier import CLASSIFIER

ROWS = [[1.0, 1.0], [2.0, 0.0], [-4.0, 3.0], [0.5, -2.0], [3.0, 3.0], [-1.0, -1.0], [0.0, 4.0], [-3.0, -2.5]]


@dataclass
class Server:
    """A ``train.py serve`` process, ready (it printed its ready line), and where it answers."""

    process: subprocess.Popen
    base: str
    stdout: list[str]  # its lines, as the reader thread reads them
    reader: threading.Thread
    stderr: Path

    def post(self, body: object) -> tuple[int, object]:
        return call(f"{self.base}/predict", body)

    def health(self) -> int:
        try:
            return call(f"{self.base}/health", timeout=5)[0]
        except OSError:
            return 0

    def stop(self) -> Run:
        """SIGTERM, as a service manager stops it: its exit status and all it printed."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=120)
        self.reader.join(timeout=10)
        return Run(self.process.returncode, "".join(self.stdout), self.stderr.read_text(), self.stderr.parent)


def start_server(*flags: str, cwd: Path, logs: Path | None = None) -> Server:
    """``train.py serve FLAGS`` in cwd on a free port, once it says it is ready (a bound of minutes, not a timing);
    its stderr in ``logs`` (cwd by default)."""
    port = free_port()
    stderr = (logs or cwd) / "serve.err"
    command = script_command("train", "serve", *flags, "--port", str(port))
    with stderr.open("w") as err:
        process = subprocess.Popen(command, cwd=cwd, env=process_env(PYTHONWARNINGS="default"), stdout=subprocess.PIPE,
                                   stderr=err, text=True)  # fmt: skip
    stdout: list[str] = []
    reader = threading.Thread(target=lambda: stdout.extend(iter(process.stdout.readline, "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 300
    while not any(line.startswith("ready: ") for line in stdout):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"serve printed {stdout} and no ready line; stderr: {stderr.read_text()}")
        time.sleep(0.1)
    return Server(process, f"http://127.0.0.1:{port}", stdout, reader, stderr)


def predicted(*flags: str, root: Path) -> list[str]:
    """What ``predict`` prints for these flags, one line per input."""
    run = run_quietly(cli_main, "predict", *flags, root=root)
    assert run.status == 0, run.stderr
    return run.stdout.split("\n")[:-1]


def lines_of(predictions: list) -> list[str]:
    """The server's predictions as ``predict`` prints them."""
    from linear_pl.runner.predict import predict_lines  # noqa: PLC0415 -- beside its one use

    return predict_lines([predictions])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("serve")
    run = run_quietly(cli_main, *CLASSIFIER, "--num_samples", "600", "--max_epochs", "3", "--default_root_dir",
                      str(root), root=root)  # fmt: skip
    assert run.status == 0, run.stderr
    return run.run_dir / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def server(checkpoint):
    """One server for the module: batches of up to 16 requests, 50 ms to fill; bodies over 10 KiB refused."""
    flags = ["--ckpt_path", str(checkpoint), "--max_batch_size", "16", "--batch_timeout", "0.05"]
    started = start_server(*flags, "--max_request_mb", "0.01", cwd=checkpoint.parents[3])
    yield started
    if started.process.poll() is None:
        started.process.kill()
        started.process.wait()


def test_sixteen_concurrent_clients_get_predicts_answers(server, checkpoint):
    assert server.stdout[0].startswith(f"serving {checkpoint} (eager, cpu, batches of up to 16) on 127.0.0.1:")
    assert "8 rows of its data replayed through HTTP match the model's predictions" in server.stdout[1]
    expected = predicted("--ckpt_path", str(checkpoint), "--x", json.dumps(ROWS), root=checkpoint.parents[3])
    # Client i sends a list of rows, or (odd i) one row alone: both come back as a list of predictions.
    requests = [ROWS[i % 8 :] + ROWS[: i % 8] if i % 2 == 0 else ROWS[i % 8] for i in range(16)]
    wanted = [expected[i % 8 :] + expected[: i % 8] if i % 2 == 0 else [expected[i % 8]] for i in range(16)]
    start = threading.Barrier(16)

    def client(x):
        start.wait()
        return server.post({"x": x})

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(client, requests))
    assert [status for status, _ in answers] == [200] * 16
    assert [lines_of(answer["predictions"]) for _, answer in answers] == wanted


def test_bad_input_is_refused_alone_and_the_server_goes_on(server, checkpoint):
    expected = "expected one input of shape [2] or a list of them (shape [N, 2])"
    refused = {
        b'{"x": [1, 1': (400, "malformed JSON: "),
        b'{"x": [1, 1, 1]}': (422, f"x has shape [3]; {expected}"),
        b'{"x": [[1, 1], [1]]}': (422, "x is not numbers of one shape"),
        b'{"x": [["a", "b"]]}': (422, "x is not numbers of one shape"),
        b'{"x": [1, NaN]}': (422, "x has a value that is not finite"),
        b'{"x": []}': (422, "x has shape [0]"),
        b"[1, 1]": (422, 'expected a JSON object {"x": INPUTS}'),
        json.dumps({"x": [[1.0, 1.0]] * 2000}).encode(): (413, "the request is over --max_request_mb"),
    }
    for body, (status, detail) in refused.items():
        got = raw_post(server, body)
        assert got[0] == status and got[1]["detail"].startswith(detail), (body[:40], got)
    # A bad request among good ones, all within one batch's 50 ms: only it fails.
    good = predicted("--ckpt_path", str(checkpoint), "--x", json.dumps(ROWS), root=checkpoint.parents[3])
    bodies = [json.dumps({"x": ROWS}).encode()] * 7 + [b'{"x": [1, 1, 1]}'] + [json.dumps({"x": ROWS}).encode()] * 7
    start = threading.Barrier(len(bodies))

    def client(body):
        start.wait()
        return raw_post(server, body)

    with ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(pool.map(client, bodies))
    assert [status for status, _ in answers] == [200] * 7 + [422] + [200] * 7
    assert all(lines_of(a["predictions"]) == good for s, a in answers if s == 200)
    status, answer = server.post({"x": ROWS})
    assert status == 200 and lines_of(answer["predictions"]) == good


def raw_post(server: Server, body: bytes) -> tuple[int, dict]:
    """POST these bytes as they are (call() sends JSON it encodes itself)."""
    request = urllib.request.Request(f"{server.base}/predict", body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_dead_worker_is_never_healthy_and_is_started_again(server, checkpoint):
    """SIGKILL the inference worker: /health stops saying 200, LitServe starts a new worker, and the server answers
    again (then SIGTERM stops it, exit 0, its output clean)."""
    assert server.health() == 200
    worker = worker_pid(server)
    os.kill(worker, signal.SIGKILL)
    deadline = time.monotonic() + 120  # only bounds: the heartbeat goes silent in 1 s, a worker starts in seconds
    while server.health() == 200:
        assert time.monotonic() < deadline, "the server said healthy for 120 s after its worker was killed"
        time.sleep(0.1)
    while server.health() != 200:
        assert time.monotonic() < deadline + 180, "no new worker became healthy"
        time.sleep(0.2)
    assert worker_pid(server) != worker
    status, answer = server.post({"x": ROWS})
    expected = predicted("--ckpt_path", str(checkpoint), "--x", json.dumps(ROWS), root=checkpoint.parents[3])
    assert status == 200 and lines_of(answer["predictions"]) == expected
    stopped = server.stop()
    assert stopped.status == 0, stopped.stderr
    assert_clean(Run(0, stopped.stdout, "", stopped.root))  # LitServe's own restart lines are on stderr


def worker_pid(server: Server) -> int:
    """The inference worker: the server's child that multiprocessing spawned (a fresh interpreter)."""
    found = subprocess.run(["pgrep", "-P", str(server.process.pid), "-f", "spawn_main"], capture_output=True,
                           text=True).stdout.split()  # fmt: skip
    assert len(found) == 1, found
    return int(found[0])


def test_refused_before_it_starts(checkpoint, capsys):
    """A format without its export, an export of another checkpoint, a host LitServe cannot take, a port in use:
    one line each, exit 2, and no server."""

    def serve(*flags):
        status = cli_main(["serve", "--ckpt_path", str(checkpoint), *flags])
        out, err = capsys.readouterr()
        return status, err.strip().splitlines()[-1]

    export = checkpoint.parents[1] / "export"
    assert serve("--format", "onnx") == (2, f"error: --format onnx: no {export / 'model.onnx'} (write it with: "
                                            f"export --ckpt_path {checkpoint})")  # fmt: skip
    export.mkdir()
    (export / "model.pt2").write_bytes(b"")
    (export / "export.json").write_text(json.dumps({"checkpoint": {"sha256": "0" * 64}}))
    status, line = serve("--format", "pt2")
    assert status == 2 and line.endswith(f"was exported from another checkpoint than {checkpoint}; export again")
    assert serve("--host", "10.1.2.3")[0] == 2
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert serve("--port", str(port)) == (2, f"error: --port {port}: cannot listen there (Address already in use)")


def test_without_the_serve_extra_it_says_what_to_install(checkpoint, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "litserve", None)  # as without the serve extra
    monkeypatch.delitem(sys.modules, "linear_pl.runner.serve")
    status = cli_main(["serve", "--ckpt_path", str(checkpoint)])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert (status, err) == (2, 'error: serve needs the serve extra (litserve is missing): pip install -e ".[serve]"')


def csv_rows(body: bytes, content_type: str) -> list:
    """A --decode hook: a text/csv body of rows, one input a line."""
    if content_type != "text/csv":
        raise ValueError(f"expected text/csv, not {content_type}")
    return [[float(v) for v in line.split(",")] for line in body.decode().splitlines()]


def test_a_decode_hook_turns_another_body_into_inputs(capsys, checkpoint):
    """``--decode``'s function reads the body (in the HTTP process, before batching); its inputs are checked as
    JSON ones are and reach the worker as ``{"x": INPUTS}``. (In this process: the middleware alone.)"""
    import asyncio  # noqa: PLC0415

    from linear_pl.runner.serve_requests import Inputs, RequestCheck  # noqa: PLC0415

    def through(body: bytes, content_type: bytes) -> tuple[int | None, bytes]:
        reached, sent = [], []

        async def app(scope, receive, send):
            reached.append((await receive())["body"])

        async def receive():
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message):
            sent.append(message)

        check = RequestCheck(app, path="/predict", max_bytes=1000, inputs=Inputs((2,), torch.float32), decode=csv_rows)
        scope = {"type": "http", "path": "/predict", "method": "POST", "headers": [(b"content-type", content_type)]}
        asyncio.run(check(scope, receive, send))
        return (sent[0]["status"], sent[1]["body"]) if sent else (None, reached[0])

    assert through(b"1,1\n2,0\n", b"text/csv") == (None, b'{"x": [[1.0, 1.0], [2.0, 0.0]]}')
    status, body = through(b"1,1,1\n", b"text/csv")
    assert status == 422 and b"x has shape [1, 3]; expected one input of shape [2]" in body
    assert through(b"1,1", b"application/json")[0] == 422
    assert through(b"1," * 600, b"text/csv")[0] == 413
    status = cli_main(["serve", "--ckpt_path", str(checkpoint), "--decode", "runner.nowhere.rows"])
    assert (status, capsys.readouterr().err.splitlines()[-1]) == (
        2, "error: --decode runner.nowhere.rows: cannot import it (No module named 'runner.nowhere')")  # fmt: skip


def test_a_server_whose_answer_is_not_the_models_is_stopped_not_ready(capsys, monkeypatch):
    """The start's replay, against a stand-in server that answers wrongly: one line, and the server is stopped
    (SIGTERM to itself, which serve turns into LitServe's own shutdown and exit 1). In this process."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: PLC0415

    from linear_pl.runner import serve  # noqa: PLC0415

    class Wrong(BaseHTTPRequestHandler):
        def do_GET(self):
            self.answer(b"ok")

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.answer(json.dumps({"predictions": [2, 2]}).encode())

        def answer(self, body):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    stand_in = ThreadingHTTPServer(("127.0.0.1", 0), Wrong)
    threading.Thread(target=stand_in.serve_forever, daemon=True).start()
    signals, failed = [], []
    monkeypatch.setattr(serve.os, "kill", lambda pid, signum: signals.append((pid, signum)))
    try:
        rows = torch.tensor([[1.0, 1.0], [2.0, 0.0]])
        serve.replay(f"http://127.0.0.1:{stand_in.server_port}", rows, torch.tensor([0, 1]), failed)
    finally:
        stand_in.shutdown()
    out, err = capsys.readouterr()
    assert signals == [(os.getpid(), signal.SIGTERM)] and out == "" and err.count("\n") == 1
    assert err == (
        "error: the server's answer for the data's test rows is not the model's: "
        "got 200 {'predictions': [2, 2]}, expected {'predictions': [0, 1]}\n"
    )
