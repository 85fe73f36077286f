"""``serving``: ``train.py serve`` under load, beside a plain FastAPI endpoint on the same model.

``examples/digits.py``'s ``DigitsCNN``, trained one epoch, served three ways on loopback, each a process of its own:
LitServe with dynamic batching (``--max_batch_size 16 --batch_timeout 0.005``), LitServe without
(``--max_batch_size 1``), and a FastAPI endpoint on uvicorn, one process, that runs the model's ``predict_step``
on the request's inputs (no checks of them) -- what LitServe claims to beat. For 1 and 16 concurrent clients, each
sending one image per request over a kept-alive connection, for ``--serve_seconds`` after a warm-up: requests per
second, and the median and 99th-percentile latency. The clients are threads of this process, on the same machine.
"""

import contextlib
import http.client
import io
import json
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

from benchmarks.measure import REPO

DIGITS = ["--model", "examples.digits.DigitsCNN", "--data", "examples.digits.Digits"]
WAYS = {
    "litserve batch 16": ["--max_batch_size", "16", "--batch_timeout", "0.005"],
    "litserve batch 1": ["--max_batch_size", "1"],
    "fastapi (uvicorn)": None,
}
CLIENTS = (1, 16)
WARM_UP = 1.0  # seconds of requests before each cell's, not counted


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(way: list[str] | None, checkpoint: Path, port: int) -> subprocess.Popen:
    """The server, once it answers: ``train.py serve`` prints its ready line; FastAPI's endpoint answers a request."""
    if way is None:
        command = [sys.executable, "-m", "benchmarks.serving", str(checkpoint), str(port)]
    else:
        command = [sys.executable, str(REPO / "scripts" / "train.py"), "serve", "--ckpt_path", str(checkpoint),
                   "--port", str(port), *way]  # fmt: skip
    server = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if way is not None:
        for line in server.stdout:
            if line.startswith("ready: "):
                return server
        raise RuntimeError(f"serve {way} exited {server.wait()} before it was ready")
    deadline = time.monotonic() + 300  # only a bound
    while time.monotonic() < deadline:
        try:
            if post(http.client.HTTPConnection("127.0.0.1", port, timeout=10), IMAGE)[0] == 200:
                return server
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the FastAPI server did not answer")


IMAGE = json.dumps({"x": [[[0.5] * 8] * 8]}).encode()  # one 1x8x8 image


def post(connection: http.client.HTTPConnection, body: bytes) -> tuple[int, bytes]:
    connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, response.read()


def load(port: int, clients: int, seconds: float) -> dict:
    """``clients`` threads, each posting one image at a time until the time is up: requests/s and latencies."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failed = []
    begin = threading.Barrier(clients + 1)

    def client(mine: list[float]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        begin.wait()
        end = time.perf_counter() + seconds
        while (now := time.perf_counter()) < end:
            status, _ = post(connection, IMAGE)
            mine.append(time.perf_counter() - now)
            if status != 200:
                failed.append(status)
        connection.close()

    threads = [threading.Thread(target=client, args=(mine,)) for mine in latencies]
    for thread in threads:
        thread.start()
    begin.wait()
    start_time = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start_time
    every = sorted(t for mine in latencies for t in mine)
    if failed or not every:
        raise RuntimeError(f"{len(failed)} requests failed ({sorted(set(failed))})")
    return {
        "clients": clients,
        "requests_per_second": len(every) / elapsed,
        "p50_ms": 1000 * every[len(every) // 2],
        "p99_ms": 1000 * every[min(len(every) - 1, int(len(every) * 0.99))],
    }


def measure(seconds: float) -> dict:
    """Each way's server started once; its cells one after the other."""
    from linear_pl.runner.cli import cli_main  # noqa: PLC0415 -- Lightning, once the section runs

    results = {}
    with tempfile.TemporaryDirectory() as root, warnings.catch_warnings():
        # Lightning's note that an epoch of 20 batches logs no step: nothing is read from the steps here.
        warnings.filterwarnings("ignore", ".*smaller than the logging interval.*")
        with contextlib.redirect_stdout(io.StringIO()):  # its progress lines
            status = cli_main([*DIGITS, "--max_epochs", "1", "--default_root_dir", root])
        if status != 0:
            raise RuntimeError(f"training the digits CNN exited {status}")
        checkpoint = next(Path(root).glob("lightning_logs/version_*/checkpoints/last.ckpt"))
        for name, way in WAYS.items():
            port = free_port()
            server = start(way, checkpoint, port)
            try:
                cells = []
                for clients in CLIENTS:
                    load(port, clients, WARM_UP)
                    cells.append(load(port, clients, seconds))
                results[name] = cells
            finally:
                server.send_signal(signal.SIGTERM)
                server.wait(timeout=120)
    return {"seconds": seconds, "ways": results}


def lines(report: dict) -> list[str]:
    rows = [f"{'server':<17} {'clients':>7} {'requests/s':>10} {'p50 ms':>7} {'p99 ms':>7}"]
    for name, cells in report["ways"].items():
        for c in cells:
            rate, p50, p99 = c["requests_per_second"], c["p50_ms"], c["p99_ms"]
            rows.append(f"{name:<17} {c['clients']:>7} {rate:>10.0f} {p50:>7.1f} {p99:>7.1f}")
    seconds = report["seconds"]
    rows.append(f"(DigitsCNN, one 8x8 image a request, {seconds:g} s a cell; clients on the same cores)")
    return rows


def fastapi_server(checkpoint: str, port: int) -> None:
    """The plain endpoint: FastAPI, one uvicorn process, the model's predict_step on the request's inputs."""
    import torch  # noqa: PLC0415
    import uvicorn  # noqa: PLC0415
    from fastapi import FastAPI  # noqa: PLC0415

    from examples.digits import DigitsCNN  # noqa: PLC0415

    model = DigitsCNN.load_from_checkpoint(checkpoint, weights_only=True).eval()
    app = FastAPI()

    @app.post("/predict")
    def predict(body: dict) -> dict:
        x = torch.tensor(body["x"], dtype=torch.float32)
        x = x.unsqueeze(0) if x.dim() == 3 else x
        with torch.inference_mode():
            return {"predictions": model.predict_step([x], 0).tolist()}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    fastapi_server(sys.argv[1], int(sys.argv[2]))
