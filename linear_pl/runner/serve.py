"""``serve``: a checkpoint's model, or its export, behind an HTTP server on LitServe, with dynamic batching.

``POST /predict`` takes ``{"x": INPUTS}``, one input or a list of them, each shaped as the model's input without
the batch dimension, and answers ``{"predictions": [...]}``, one per input: the model's own ``predict_step`` on
``[x]``, the values ``predict`` prints. ``GET /health`` is 200 while the inference worker is alive and ready.

Requests are checked, and bad ones refused alone, before LitServe batches them (serve_requests.py).
"""

import json
import math
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import lightning as L
import litserve as ls
import torch
from lightning.pytorch.utilities.model_helpers import is_overridden

from linear_pl.runner.errors import UsageError
from linear_pl.runner.export import sha256
from linear_pl.runner.export_check import onnx_runner
from linear_pl.runner.serve_requests import Inputs, RequestCheck, decode_json, import_decode

REPLAY_ROWS = 8  # the data's test rows sent through the HTTP path at start
# Eager, the export and another device agree within this (the export's own tolerance; a class must be equal).
RTOL, ATOL = 1e-3, 1e-5
# The worker's heartbeat: /health says unhealthy once the worker has been silent this long, or is gone. LitServe
# itself notices a dead worker only at its next check (every 2 s), and says "ok" until then.
BEAT_EVERY, SILENT_AFTER = 0.1, 1.0


def exported_forward(fmt: str, path: Path, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """The export's runner, in place of the model's forward: torch.export's program, or ONNX Runtime's session."""
    if fmt == "pt2":
        return torch.export.load(str(path)).module().to(device)
    return onnx_runner(path, device, on_device=True)


class ModelAPI(ls.LitAPI):
    """The inference worker: the model's ``predict_step`` on ``[x]`` over a batch of requests' inputs."""

    def __init__(self, model: L.LightningModule, inputs: Inputs, export: tuple[str, Path] | None, life, **batching):
        super().__init__(**batching)
        # life: shared with the HTTP processes, [the worker's pid, its last heartbeat (time.monotonic)].
        self.model, self.inputs, self.export, self.life = model, inputs, export, life

    def setup(self, device: str) -> None:
        self.on = torch.device(device)
        self.model = self.model.to(self.on).eval()
        if self.export is not None:  # predictions still go through the model's own predict_step
            self.model.forward = exported_forward(*self.export, self.on)
        self.life[0] = os.getpid()
        threading.Thread(target=self.beating, daemon=True).start()

    def beating(self) -> None:
        while True:
            self.life[1] = time.monotonic()
            time.sleep(BEAT_EVERY)

    def health(self) -> bool:
        return alive(int(self.life[0])) and time.monotonic() - self.life[1] < SILENT_AFTER

    def decode_request(self, request: dict) -> torch.Tensor:
        return torch.tensor(request["x"], dtype=self.inputs.dtype)  # checked by RequestCheck

    def batch(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        return inputs  # each request holds any number of inputs: predict concatenates them

    def predict(self, x: torch.Tensor | list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
        parts = x if isinstance(x, list) else [x]
        with torch.inference_mode():
            y = torch.as_tensor(self.model.predict_step([torch.cat(parts).to(self.on)], 0)).cpu()
        y = list(y.split([len(p) for p in parts]))
        return y if isinstance(x, list) else y[0]

    def encode_response(self, output: torch.Tensor) -> dict:
        return {"predictions": output.tolist()}


def alive(pid: int) -> bool:
    """Whether the worker runs: a killed one is at once gone, or a zombie until LitServe's monitor reaps it. Where
    there is no /proc (macOS), the heartbeat alone says it."""
    if pid <= 0:
        return False  # not started yet
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def stored_rows(datamodule: L.LightningDataModule | None) -> torch.Tensor:
    """A few of the data's inputs: its test split's, or its validation's, or its predict loader's."""
    splits = (("test", "test_dataloader"), ("validate", "val_dataloader"), ("predict", "predict_dataloader"))
    for stage, loader in splits if datamodule is not None else ():
        if not is_overridden(loader, datamodule):
            continue
        datamodule.prepare_data()  # as the Trainer does before setup: a download the data needs
        datamodule.setup(stage)
        batch = next(iter(getattr(datamodule, loader)()), None)
        x = batch[0] if isinstance(batch, list | tuple) else batch
        if isinstance(x, torch.Tensor) and x.dim() >= 1 and len(x):
            return x[:REPLAY_ROWS].cpu()
    raise UsageError("serve: the data has no test, validation or predict inputs (tensors) to check the server with")


def export_of(fmt: str, checkpoint: Path) -> tuple[str, Path] | None:
    """``--format pt2|onnx``: the run's export of this very checkpoint (export/export.json's sha256 says so)."""
    if fmt == "eager":
        return None
    export = checkpoint.parent.parent / "export"
    path, meta = export / f"model.{fmt}", export / "export.json"
    if not path.is_file() or not meta.is_file():
        raise UsageError(f"--format {fmt}: no {path} (write it with: export --ckpt_path {checkpoint})")
    recorded = json.loads(meta.read_text()).get("checkpoint", {}).get("sha256")
    if recorded != sha256(checkpoint):
        raise UsageError(f"--format {fmt}: {path} was exported from another checkpoint than {checkpoint}; export again")
    return fmt, path


def check_address(host: str, port: int) -> None:
    """Fail in one line before anything starts: LitServe's own checks raise, and a port in use is found late."""
    if host not in ("127.0.0.1", "0.0.0.0", "::"):
        raise UsageError(f"--host {host}: LitServe listens on 127.0.0.1 (this machine), 0.0.0.0 or :: (every address)")
    if not 1024 <= port <= 65535:
        raise UsageError(f"--port {port}: must be from 1024 to 65535")
    with socket.socket(socket.AF_INET6 if host == "::" else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a recent server's port too
        try:
            probe.bind((host, port))
        except OSError as error:
            raise UsageError(f"--port {port}: cannot listen there ({error.strerror})") from None


def call(url: str, body: dict | None = None, timeout: float = 30) -> tuple[int, object]:
    """GET, or POST JSON: the status and the JSON (or text) answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text.decode(errors="replace")


def agree(got: object, expected: torch.Tensor) -> bool:
    got = torch.as_tensor(got, dtype=expected.dtype)
    if got.shape != expected.shape:
        return False
    if expected.is_floating_point():
        return torch.allclose(got, expected, rtol=RTOL, atol=ATOL)
    return torch.equal(got, expected)


def replay(base: str, rows: torch.Tensor, expected: torch.Tensor, failed: list[str]) -> None:
    """Once the server is healthy, the stored rows through HTTP, all at once and the first alone; ready only if
    they give the eager model's predictions. Otherwise one line, and the server is stopped (exit 1)."""
    deadline = time.monotonic() + 600  # only a bound: a worker loads in seconds
    while True:
        try:
            if call(f"{base}/health", timeout=5)[0] == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            failed.append("the server did not become healthy in 600 s")
            break
        time.sleep(0.1)
    if not failed:
        try:
            for x, want in ((rows, expected), (rows[0], expected[:1])):
                status, answer = call(f"{base}/predict", {"x": x.tolist()})
                got = answer.get("predictions") if status == 200 and isinstance(answer, dict) else None
                if got is None or not agree(got, want):
                    failed.append(f"got {status} {answer}, expected {{'predictions': {want.tolist()}}}")
                    break
        except OSError as error:
            failed.append(f"the request failed ({error})")
    if failed:
        print(f"error: the server's answer for the data's test rows is not the model's: {failed[0]}", file=sys.stderr)
        os.kill(os.getpid(), signal.SIGTERM)  # stop() below: workers and HTTP processes end
        return
    said = f"{len(rows)} rows of its data replayed through HTTP match the model's predictions"
    print(f"ready: {base}/predict ({said})", flush=True)


def stopper(owner: int) -> Callable:
    """SIGTERM stops the server as Ctrl-C does: LitServe ends its workers and HTTP processes on KeyboardInterrupt
    (left to the default, they would outlive it). Its HTTP processes, forked with this handler, end as by default."""

    def stop(signum: int, frame: object) -> None:
        if os.getpid() == owner:
            raise KeyboardInterrupt
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)

    return stop


def serve(run) -> int:
    """Serve the run's model until Ctrl-C; 1 where its stored test rows do not come back as the model's answer."""
    config = run.config
    check_address(config.host, config.port)
    if config.max_batch_size < 1 or config.batch_timeout < 0 or config.max_request_mb <= 0:
        raise UsageError("--max_batch_size must be >= 1, --batch_timeout >= 0 and --max_request_mb > 0")
    decode = decode_json if config.decode is None else import_decode(config.decode)
    export = export_of(config.format, run.checkpoint)
    model, device = run.model.eval(), run.trainer.strategy.root_device
    # Numbers in the model's own float type (no float64 on a device that has none), the data's other types as they are.
    rows = stored_rows(run.datamodule)
    rows = rows.to(model.dtype) if rows.is_floating_point() else rows
    with torch.inference_mode():
        expected = torch.as_tensor(model.to(device).predict_step([rows.to(device)], 0)).cpu()
    model.cpu()  # the worker moves it to its device
    inputs = Inputs(tuple(rows.shape[1:]), rows.dtype)
    life = multiprocessing.get_context("spawn").RawArray("d", 2)  # LitServe spawns its worker
    batching = {"max_batch_size": config.max_batch_size, "batch_timeout": config.batch_timeout}
    api = ModelAPI(model, inputs, export, life, **batching)
    check = {"path": "/predict", "max_bytes": math.floor(config.max_request_mb * 2**20), "inputs": inputs}
    # restart_workers: LitServe starts a dead worker again (and fails its requests in flight).
    server = ls.LitServer(
        api, accelerator=device.type, devices=1, restart_workers=True, fast_queue=True,
        middlewares=[(RequestCheck, {**check, "decode": decode})],
    )  # fmt: skip
    host = "[::1]" if config.host == "::" else "127.0.0.1" if config.host == "0.0.0.0" else config.host
    base = f"http://{host}:{config.port}"
    what = f"{run.checkpoint} ({config.format}, {device.type}, batches of up to {config.max_batch_size})"
    print(f'serving {what} on {config.host}:{config.port}: POST /predict {{"x": INPUTS}}, GET /health', flush=True)
    failed: list[str] = []
    signal.signal(signal.SIGTERM, stopper(os.getpid()))
    threading.Thread(target=replay, args=(base, rows, expected, failed), daemon=True).start()
    server.run(host=config.host, port=config.port, log_level="warning", generate_client_file=False)
    return 1 if failed else 0
