"""How fast is linear_pl? Each workload trained three ways on the same data, in one process.

- plain: the tutorial's loop (forward, MSE, zero_grad, backward, step), batched by slicing tensors;
- bare: a minimal LightningModule and ``Trainer.fit`` over pre-sliced batches, with logger,
  checkpointing and progress bar off -- the framework's own floor;
- linear_pl: ``Trainer.fit`` as ``scripts/train.py`` configures it for a real run (TensorBoard
  logging, checkpoints, progress report, convergence and divergence checks, validation).

All three time ``fit`` alone (best of ``--repeats`` rounds), on data made once by
``SyntheticDataModule`` (noise keeps every run from stopping early as converged), at the same
learning rate. Peak RSS is the process's high-water
mark, reset before each way (Linux); it includes the data.
"""

import argparse
import contextlib
import io
import json
import logging
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import lightning as L
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader

from linear_pl.cli import LinearCLI
from linear_pl.closed_form import SAFETY_FACTOR, stable_lr
from linear_pl.data import TUTORIAL_WEIGHTS, SlicedBatches, SyntheticDataModule
from linear_pl.errors import UsageError, silence_known_noise
from linear_pl.model import DotProduct

GIB = 1 << 30
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Workload:
    name: str
    num_samples: int
    num_features: int
    batch_size: int
    epochs: int


WORKLOADS = {
    "seed": Workload("seed", 10, 7, 1, 200),
    "medium": Workload("medium", 100_000, 64, 256, 5),
    "large": Workload("large", 2_000_000, 256, 65536, 10),
}


def peak_rss_reset() -> None:
    """Reset the process's peak-RSS mark (Linux only; elsewhere the peak covers the whole run)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_rss_bytes() -> int:
    """The process's peak resident memory since the last reset, in bytes."""
    status = Path("/proc/self/status")
    if status.exists():
        return int(re.search(r"VmHWM:\s+(\d+) kB", status.read_text()).group(1)) * 1024
    import resource  # noqa: PLC0415 -- the portable fallback, in kB on Linux and bytes on macOS

    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a clock read after it is honest."""
    # Kernels run asynchronously on accelerators: stop the clock only when they are done.
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def copy_bandwidth(device: torch.device, nbytes: int = 512 << 20) -> float:
    """Bytes read plus bytes written per second by ``copy_`` of a large tensor (best of 5)."""
    src = torch.ones(nbytes // 4, device=device)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(5):
        synchronize(device)
        start = time.perf_counter()
        dst.copy_(src)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * nbytes / best


def plain_loop(x: torch.Tensor, y: torch.Tensor, lr: float, batch_size: int, epochs: int) -> float:
    """The tutorial's loop, batched by slicing; returns the seconds it took."""
    torch.manual_seed(0)
    model = DotProduct(x.shape[1]).to(x.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    synchronize(x.device)
    start = time.perf_counter()
    for _ in range(epochs):
        for i in range(0, len(x), batch_size):
            loss = F.mse_loss(model(x[i : i + batch_size]), y[i : i + batch_size])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    synchronize(x.device)
    return time.perf_counter() - start


class BareModule(L.LightningModule):
    """The least a LightningModule needs: the model, a training step, an optimizer."""

    def __init__(self, num_features: int, lr: float) -> None:
        super().__init__()
        self.net, self.lr = DotProduct(num_features), lr

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.mse_loss(self.net(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def bare_lightning(
    x: torch.Tensor, y: torch.Tensor, lr: float, batch_size: int, epochs: int, accelerator: str
) -> float:
    """A minimal LightningModule's ``Trainer.fit`` over the same pre-sliced batches; returns seconds."""
    torch.manual_seed(0)
    trainer = L.Trainer(
        accelerator=accelerator, devices=1, max_epochs=epochs, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    loader = DataLoader(SlicedBatches(x, y, batch_size), batch_size=None)
    start = time.perf_counter()
    trainer.fit(BareModule(x.shape[1], lr), loader)
    synchronize(x.device)
    return time.perf_counter() - start


def linear_pl_fit(data: SyntheticDataModule, workload: Workload, accelerator: str, root: str) -> float:
    """linear_pl's Trainer.fit, configured by the same CLI as scripts/train.py."""
    weights = json.dumps(data.true_weights)
    flags = [
        "--accelerator", accelerator, "--true_weights", weights, "--num_samples", str(workload.num_samples),
        "--batch_size", str(workload.batch_size), "--noise_std", str(data.noise_std),
        "--max_epochs", str(workload.epochs), "--default_root_dir", root,
    ]  # fmt: skip
    cli = LinearCLI(flags)
    # The benchmark's tensors, not a second copy: setup() keeps data it already has.
    for name in ("train_x", "train_y", "val_x", "val_y"):
        setattr(cli.datamodule, name, getattr(data, name))
    with contextlib.redirect_stdout(io.StringIO()):  # the progress lines
        start = time.perf_counter()
        cli.trainer.fit(cli.model, cli.datamodule)
        synchronize(data.train_x.device)
        seconds = time.perf_counter() - start
    if cli.trainer.current_epoch != workload.epochs:
        raise RuntimeError(f"linear_pl stopped after {cli.trainer.current_epoch} of {workload.epochs} epochs")
    return seconds


def run_workload(workload: Workload, accelerator: str, device: torch.device, repeats: int = 3) -> dict:
    """Train one workload the three ways on one set of data; speeds, ratios, memory, bandwidth."""
    weights = [TUTORIAL_WEIGHTS[i % len(TUTORIAL_WEIGHTS)] for i in range(workload.num_features)]
    data = SyntheticDataModule(weights, num_samples=workload.num_samples, noise_std=1.0)
    data.setup()
    for name in ("train_x", "train_y", "val_x", "val_y"):
        setattr(data, name, getattr(data, name).to(device))
    x, y = data.train_x, data.train_y
    lr = SAFETY_FACTOR * stable_lr(x, batch_size=workload.batch_size)  # what --lr auto picks
    data_bytes = sum(t.numel() * t.element_size() for t in (x, y, data.val_x, data.val_y))

    seconds, peak = {}, {}
    with tempfile.TemporaryDirectory() as root:
        ways = {
            "plain": lambda: plain_loop(x, y, lr, workload.batch_size, workload.epochs),
            "bare": lambda: bare_lightning(x, y, lr, workload.batch_size, workload.epochs, accelerator),
            "linear_pl": lambda: linear_pl_fit(data, workload, accelerator, root),
        }
        # Rounds of plain, bare, linear_pl in turn; the best of each counts (as timeit does): noise
        # from other processes only ever adds time, and the first round pays one-off warm-up costs.
        for _ in range(repeats):
            for way, train in ways.items():
                peak_rss_reset()
                seconds[way] = min(seconds.get(way, float("inf")), train())
                peak[way] = max(peak.get(way, 0), peak_rss_bytes())

    samples = workload.num_samples * workload.epochs
    x_bytes = x.numel() * x.element_size()
    return {
        **asdict(workload),
        "samples_per_second": {way: samples / s for way, s in seconds.items()},
        "linear_pl_over_plain": seconds["plain"] / seconds["linear_pl"],
        "linear_pl_over_bare": seconds["bare"] / seconds["linear_pl"],
        "peak_rss_bytes": peak,
        "data_bytes": data_bytes,
        # Each epoch reads x twice: the forward x @ w and the backward x.T @ grad.
        "effective_bandwidth": {way: 2 * x_bytes * workload.epochs / s for way, s in seconds.items()},
    }


def wall_time(command: list[str], repeats: int = 3) -> float:
    """Median wall time of a whole command, start-up and imports included."""
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as cwd:
            start = time.perf_counter()
            subprocess.run(command, cwd=cwd, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def tutorial_wall_times() -> dict:
    """Whole-command wall time: tutorial 1's plain script beside ``train.py --preset seed-7w``."""
    tutorial = wall_time([sys.executable, str(REPO / "examples" / "tutorial1.py")])
    ours = wall_time([sys.executable, str(REPO / "scripts" / "train.py"), "--preset", "seed-7w"])
    return {"tutorial1_seconds": tutorial, "train_seed_7w_seconds": ours, "ratio": ours / tutorial}


def format_report(rows: list[dict], walls: dict | None, copy_bw: float, machine: str) -> str:
    """The printed table."""
    lines = [
        f"machine: {machine}",
        "",
        f"{'workload':<9} {'N':>9} {'d':>4} {'batch':>6} {'epochs':>6} {'plain/s':>10} {'bare/s':>10} "
        f"{'linear_pl/s':>11} {'pl/plain':>8} {'pl/bare':>7} {'peak RSS':>9} {'RSS goal':>9}",
    ]
    for r in rows:
        sps = r["samples_per_second"]
        rss, goal = r["peak_rss_bytes"]["linear_pl"], 1.5 * r["data_bytes"] + GIB
        lines.append(
            f"{r['name']:<9} {r['num_samples']:>9} {r['num_features']:>4} {r['batch_size']:>6} {r['epochs']:>6} "
            f"{sps['plain']:>10.3g} {sps['bare']:>10.3g} {sps['linear_pl']:>11.3g} "
            f"{r['linear_pl_over_plain']:>8.2f} {r['linear_pl_over_bare']:>7.2f} "
            f"{rss / GIB:>7.2f}Gi {goal / GIB:>7.2f}Gi"
        )
    lines.append("(samples/s; pl = linear_pl; peak RSS of the linear_pl run, data included; goal 1.5 x data + 1 GiB)")
    for r in rows:
        if r["name"] == "large":
            bw = r["effective_bandwidth"]
            lines.append(
                f"large: effective bandwidth (2 reads of x per epoch) plain {bw['plain'] / 1e9:.1f} GB/s, "
                f"linear_pl {bw['linear_pl'] / 1e9:.1f} GB/s; copy bandwidth (read + write) {copy_bw / 1e9:.1f} GB/s"
            )
    if walls:
        lines.append(
            f"wall time: examples/tutorial1.py {walls['tutorial1_seconds']:.2f} s, "
            f"scripts/train.py --preset seed-7w {walls['train_seed_7w_seconds']:.2f} s "
            f"(ratio {walls['ratio']:.2f}; median of 3)"
        )
    return "\n".join(lines)


def machine_description() -> str:
    """CPU, cores and library versions: what a figure was measured on."""
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"torch {torch.__version__}, lightning {L.__version__}"
    )


def parse_size(text: str) -> Workload:
    """``--size N,d,batch,epochs`` as a custom workload."""
    try:
        n, d, b, e = (int(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"--size {text}: expected N,d,batch,epochs (four integers)") from None
    if min(n, d, b, e) < 1 or n < d:
        raise UsageError(f"--size {text}: every value must be >= 1, and N >= d")
    return Workload("custom", n, d, b, e)


def benchmark_main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table, and write it as JSON with --json FILE."""
    parser = argparse.ArgumentParser(prog="benchmark.py", description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=sorted(WORKLOADS), help="run one workload (default: all)")
    parser.add_argument("--size", help="a custom workload: N,d,batch,epochs")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--accelerator", default="auto", help="cpu, gpu or auto (one device)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds per workload; the best time counts")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        print(f"error: --repeats {args.repeats}: must be >= 1", file=sys.stderr)
        return 2
    silence_known_noise()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # "GPU available: ..." per Trainer
    try:
        workloads = [parse_size(args.size)] if args.size else None
        if args.workload:
            workloads = (workloads or []) + [WORKLOADS[args.workload]]
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    device = L.Trainer(accelerator=args.accelerator, devices=1, logger=False).strategy.root_device
    machine = machine_description()
    rows = [run_workload(w, args.accelerator, device, args.repeats) for w in (workloads or WORKLOADS.values())]
    walls = None if workloads else tutorial_wall_times()
    copy_bw = copy_bandwidth(device)
    print(format_report(rows, walls, copy_bw, machine))
    if args.json:
        report = {"machine": machine, "copy_bandwidth": copy_bw, "workloads": rows, "wall_time": walls}
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0
