"""``floor``: each workload trained three ways on the same tensors, in one process: the tutorial's plain loop
batched by slicing, a bare LightningModule (logger, checkpoints, progress bar off: Lightning's own floor), and
linear_pl's ``Trainer.fit`` built by ``build_run`` as ``scripts/train.py`` builds it. ``fit`` alone, best of
``--repeats`` rounds; the data module draws its data before the clock starts (``setup`` draws once)."""

import contextlib
import gc
import io
import tempfile
import time
from dataclasses import asdict

import lightning as L
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader

from benchmarks.measure import GIB, Workload, peak_rss_bytes, peak_rss_reset
from linear_pl.regression.closed_form import SAFETY_FACTOR, stable_lr
from linear_pl.regression.data import SlicedBatches, SyntheticDataModule
from linear_pl.regression.model import DotProduct
from linear_pl.runner.cli import build_run
from linear_pl.runner.run import Run


def plain_loop(x: torch.Tensor, y: torch.Tensor, lr: float, batch_size: int, epochs: int) -> float:
    """The tutorial's loop, batched by slicing; returns the seconds it took."""
    torch.manual_seed(0)
    model = DotProduct(x.shape[1]).to(x.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    start = time.perf_counter()
    for _ in range(epochs):
        for i in range(0, len(x), batch_size):
            loss = F.mse_loss(model(x[i : i + batch_size]), y[i : i + batch_size])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    loss.item()  # waits for an accelerator's queued work
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
    start = time.perf_counter()
    trainer.fit(BareModule(x.shape[1], lr), DataLoader(SlicedBatches(x, y, batch_size), batch_size=None))
    return time.perf_counter() - start


def linear_pl_run(workload: Workload, lr: float, accelerator: str, root: str) -> Run:
    """linear_pl as scripts/train.py builds it, its data drawn (``setup`` draws once; fit keeps it)."""
    run = build_run([*workload.flags(lr), "--accelerator", accelerator, "--default_root_dir", root])
    run.datamodule.setup("fit")
    return run


def linear_pl_fit(run: Run) -> float:
    """``Trainer.fit`` of a run made by :func:`linear_pl_run`; returns seconds."""
    with contextlib.redirect_stdout(io.StringIO()):  # the progress lines
        start = time.perf_counter()
        run.trainer.fit(run.model, run.datamodule)
        run.model.weight.sum().item()  # waits for an accelerator's queued work
        return time.perf_counter() - start


def measure(workload: Workload, accelerator: str, repeats: int) -> dict:
    """One workload trained the three ways on the same tensors; speeds, ratios, peak memory."""
    data = SyntheticDataModule(workload.weights, num_samples=workload.num_samples, noise_std=1.0, seed=0)
    data.setup()  # the flags' data: only to take the rate --lr auto would take on it, raw
    lr = SAFETY_FACTOR * stable_lr(data.train_x, batch_size=workload.batch_size)
    del data
    gc.collect()  # a data module refers to itself (hyperparameters): free its tensors before the rounds
    seconds, peak = {}, {}
    with tempfile.TemporaryDirectory() as root:
        for _ in range(repeats):
            measured = _round(workload, lr, accelerator, root)
            gc.collect()  # the round's Trainer and data module refer to each other: free its data now
            for way, (way_seconds, way_peak) in measured.items():
                # The best of each way counts (as timeit does): noise only ever adds time.
                seconds[way] = min(seconds.get(way, float("inf")), way_seconds)
                peak[way] = max(peak.get(way, 0), way_peak)
    samples = workload.num_samples * workload.epochs
    return {
        **asdict(workload),
        "samples_per_second": {way: samples / s for way, s in seconds.items()},
        "linear_pl_over_plain": seconds["plain"] / seconds["linear_pl"],
        "linear_pl_over_bare": seconds["bare"] / seconds["linear_pl"],
        "peak_rss_bytes": peak,
        "data_bytes": sum(4 * n * (workload.num_features + 1) for n in (workload.num_samples, 10)),
        "lr": lr,
    }


def _round(workload: Workload, lr: float, accelerator: str, root: str) -> dict[str, tuple[float, int]]:
    """One round of the three ways on one set of tensors: seconds and peak RSS of each."""
    run = linear_pl_run(workload, lr, accelerator, root)  # a fresh Trainer each round: it fits once
    device = run.trainer.strategy.root_device
    x, y = run.datamodule.train_x.to(device), run.datamodule.train_y.to(device)
    ways = {
        "plain": lambda: plain_loop(x, y, lr, workload.batch_size, workload.epochs),
        "bare": lambda: bare_lightning(x, y, lr, workload.batch_size, workload.epochs, accelerator),
        "linear_pl": lambda: linear_pl_fit(run),  # the same tensors: setup kept the data it drew
    }
    measured = {}
    for way, train in ways.items():
        peak_rss_reset()
        seconds = train()
        measured[way] = (seconds, peak_rss_bytes())
    return measured


def lines(rows: list[dict]) -> list[str]:
    lines = [f"{'workload':<9} {'N':>9} {'d':>4} {'batch':>6} {'epochs':>6} {'plain/s':>10} {'bare/s':>10} "
             f"{'linear_pl/s':>11} {'pl/plain':>8} {'pl/bare':>7} {'peak RSS':>9}"]  # fmt: skip
    for r in rows:
        sps = r["samples_per_second"]
        lines.append(
            f"{r['name']:<9} {r['num_samples']:>9} {r['num_features']:>4} {r['batch_size']:>6} {r['epochs']:>6} "
            f"{sps['plain']:>10.3g} {sps['bare']:>10.3g} {sps['linear_pl']:>11.3g} "
            f"{r['linear_pl_over_plain']:>8.2f} {r['linear_pl_over_bare']:>7.2f} "
            f"{r['peak_rss_bytes']['linear_pl'] / GIB:>7.2f}Gi"
        )
    lines.append(
        "(samples/s of Trainer.fit or the loop alone, best of rounds; goal pl/bare >= 0.9 on medium and large)"
    )
    return lines
