"""``larger``: what the run costs a model a user brings that is not tiny.

An MLP ``width`` wide with ``layers`` hidden layers (4096 and 3: 50M parameters) trained with Adam for
``steps`` steps of ``batch`` random rows, three ways, on the same data:

- ``bare``: ``Trainer.fit`` with logger, checkpoints, progress bar and summary off (Lightning's floor);
- ``modelckpt``: the same with Lightning's ``ModelCheckpoint(every_n_train_steps=N)``, saving in the
  training loop, as a Lightning user would;
- ``linear_pl``: the run as ``scripts/train.py`` builds it, with its defaults (``--trainer.max_steps``
  the only flag beside the model and data), fitted and reported as the command does.

Each way runs in a process of its own (in one process, memory a way leaves behind would count in
the next one's peak). For each: ``Trainer.fit``'s seconds (for linear_pl also until its last
checkpoint is on disk and results.json written), the time training waited on checkpoint writes, the
checkpoint's size, the process's peak RSS, and what a kill at a uniformly random moment of the fit
would lose: the training since the newest checkpoint on disk, at worst and on average. Rounds
alternate the ways; the best fit of each way counts.
"""

import contextlib
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

from benchmarks.measure import REPO, peak_rss_bytes
from linear_pl.regression.data import SlicedBatches
from linear_pl.runner.cli import build_run
from linear_pl.runner.noise import silence_known_noise
from linear_pl.runner.run import fit as run_fit

MIB = 1 << 20


class LargerMLP(L.LightningModule):
    """A plain LightningModule: ``layers`` hidden Linear+ReLU layers ``width`` wide, one output, Adam."""

    def __init__(self, width: int = 4096, layers: int = 3, lr: float = 1e-4) -> None:
        super().__init__()
        self.save_hyperparameters()
        hidden = [m for _ in range(layers) for m in (nn.Linear(width, width), nn.ReLU())]
        self.net = nn.Sequential(*hidden, nn.Linear(width, 1))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.mse_loss(self.net(x).squeeze(-1), y)
        self.log("train/loss", loss, on_step=False, on_epoch=True)  # summed on the device, read once an epoch
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class RandomRows(L.LightningDataModule):
    """``steps`` batches of ``batch_size`` random rows ``width`` wide and a target: one epoch is the run."""

    def __init__(self, width: int = 4096, batch_size: int = 16, steps: int = 64, seed: int = 0) -> None:
        super().__init__()
        self.width, self.batch_size, self.steps, self.seed = width, batch_size, steps, seed
        self.x = self.y = None

    def setup(self, stage: str | None = None) -> None:
        if self.x is None:  # drawn once: every way trains on the same rows
            generator = torch.Generator().manual_seed(self.seed)
            self.x = torch.randn(self.steps * self.batch_size, self.width, generator=generator)
            self.y = self.x[:, :8].sum(dim=1)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(SlicedBatches(self.x, self.y, self.batch_size), batch_size=None)


class TimedCheckpointIO(TorchCheckpointIO):
    """Lightning's own checkpoint IO, each save timed: (started, finished) on the monotonic clock."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[float, float]] = []

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        start = time.monotonic()
        super().save_checkpoint(checkpoint, path, storage_options)
        self.writes.append((start, time.monotonic()))


def kill_loss(start: float, end: float, writes: list[tuple[float, float]]) -> tuple[float, float]:
    """What a kill at a uniformly random moment of [start, end] loses, at worst and on average, in seconds:
    the time since the state of the newest checkpoint on disk then (since ``start`` before any).

    ``writes``: (when its state was taken, when it was on disk) for each checkpoint, in order."""
    landed = sorted((done, taken) for taken, done in writes if done <= end)
    worst = area = 0.0
    since, moment = start, start  # the state a kill now would resume from; the time reached
    for done, taken in [*landed, (end, None)]:
        # Between moment and done, a kill resumes from `since`: it loses t - since, growing linearly.
        worst = max(worst, done - since)
        area += ((done - since) ** 2 - (moment - since) ** 2) / 2
        moment = done
        if taken is not None:
            since = max(since, taken)
    return worst, area / (end - start)


def bare_fit(data: RandomRows, size: dict, accelerator: str, every_n_steps: int | None, root: str) -> dict:
    """A bare Trainer.fit, with Lightning's ModelCheckpoint every ``every_n_steps`` steps if given."""
    torch.manual_seed(0)
    model = LargerMLP(size["width"], size["layers"])
    checkpoint_io = TimedCheckpointIO()
    callbacks = [] if every_n_steps is None else [ModelCheckpoint(dirpath=root, every_n_train_steps=every_n_steps)]
    trainer = L.Trainer(
        accelerator=accelerator, devices=1, max_steps=size["steps"], logger=False,
        enable_checkpointing=every_n_steps is not None, callbacks=callbacks, plugins=[checkpoint_io],
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    start = time.monotonic()
    trainer.fit(model, data)
    end = time.monotonic()
    files = list(Path(root).glob("*.ckpt"))
    return {
        "fit_seconds": end - start, "done_seconds": end - start,
        "waited_seconds": sum(done - taken for taken, done in checkpoint_io.writes),
        "writes": len(checkpoint_io.writes), "kill_loss": kill_loss(start, end, checkpoint_io.writes),
        "checkpoint_bytes": files[0].stat().st_size if files else 0, "note": "",
    }  # fmt: skip


def linear_pl_fit(data: RandomRows, size: dict, accelerator: str, root: str) -> dict:
    """The run as scripts/train.py builds it, defaults and all; fit and report as the command does."""
    torch.manual_seed(0)
    flags = ["--model", "benchmarks.larger.LargerMLP", "--data", "benchmarks.larger.RandomRows",
             "--model.width", str(size["width"]), "--model.layers", str(size["layers"]),
             "--data.width", str(size["width"]), "--data.batch_size", str(size["batch"]),
             "--data.steps", str(size["steps"]), "--trainer.max_steps", str(size["steps"]),
             "--accelerator", accelerator, "--default_root_dir", root]  # fmt: skip
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        run = build_run(flags)
        run.datamodule = data  # the same rows as the other ways
        start = time.monotonic()
        outcome = run_fit(run)
        done = time.monotonic()
    if outcome.status != 0:
        raise RuntimeError(f"linear_pl's fit ended with status {outcome.status}: {outcome.message}")
    fit_seconds = outcome.results["fit_seconds"]
    checkpoints, writer = run.checkpoints, run.trainer.strategy.checkpoint_io
    last = Path(outcome.results["last_checkpoint"])
    note = next((line for line in err.getvalue().splitlines() if line.startswith("note: a checkpoint costs")), "")
    return {
        "fit_seconds": fit_seconds, "done_seconds": done - start, "waited_seconds": checkpoints.waited_seconds,
        "writer_cpu_seconds": writer.writer_cpu_total, "writes": len(writer.writes),
        "kill_loss": kill_loss(start, start + fit_seconds, writer.writes),
        "checkpoint_bytes": last.stat().st_size, "stopped_because": outcome.results["stopped_because"], "note": note,
    }  # fmt: skip


def one_way(way: str, size: dict, every_n_steps: int, accelerator: str) -> dict:
    """One way's fit, in this process (a fresh one, started by :func:`measure`): its measurements and the
    process's peak RSS."""
    silence_known_noise()  # as scripts/train.py does
    data = RandomRows(size["width"], size["batch"], size["steps"])
    data.setup()
    with tempfile.TemporaryDirectory() as root, contextlib.redirect_stderr(io.StringIO()):
        if way == "linear_pl":
            measured = linear_pl_fit(data, size, accelerator, root)
        else:
            measured = bare_fit(data, size, accelerator, every_n_steps if way == "modelckpt" else None, root)
    measured["peak_rss_bytes"] = peak_rss_bytes()
    return measured


def measure(size: dict, every_n_steps: int, accelerator: str, repeats: int) -> dict:
    """The three ways, each in its own process, ``repeats`` rounds alternating; the best fit of each way."""
    ways = ["bare", "modelckpt", "linear_pl"]
    best: dict[str, dict] = {}
    for round_ in range(repeats):
        for way in ways if round_ % 2 == 0 else list(reversed(ways)):
            code = (
                "import json, sys; from benchmarks.larger import one_way; "
                "print(json.dumps(one_way(sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), sys.argv[4])))"
            )
            args = [way, json.dumps(size), str(every_n_steps), accelerator]
            # From the repository's root, where ``benchmarks`` is found.
            proc = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"larger, {way}: exit status {proc.returncode}: {proc.stderr[-1000:]}")
            measured = json.loads(proc.stdout.strip().splitlines()[-1])
            if way not in best or measured["fit_seconds"] < best[way]["fit_seconds"]:
                best[way] = measured
    params = sum(p.numel() for p in LargerMLP(size["width"], size["layers"]).parameters())
    bare = best["bare"]["fit_seconds"]
    return {
        **size, "parameters": params, "every_n_steps": every_n_steps, "repeats": repeats, "ways": best,
        "bare_over": {way: bare / m["fit_seconds"] for way, m in best.items()},
        "bare_over_linear_pl_done": bare / best["linear_pl"]["done_seconds"],
    }  # fmt: skip


def lines(r: dict) -> list[str]:
    lines = [
        f"larger model: MLP {r['width']} wide, {r['layers']} hidden layers, {r['parameters'] / 1e6:.1f}M parameters, "
        f"Adam; {r['steps']} steps of batch {r['batch']}; best of {r['repeats']} rounds alternating the ways, "
        "each way in a process of its own",
        f"{'way':<10} {'fit s':>7} {'bare/way':>8} {'writes':>6} {'waited s':>8} {'ckpt MiB':>8} {'peak RSS':>9} "
        f"{'kill loses: worst s':>19} {'mean s':>7}",
    ]
    for way, m in r["ways"].items():
        worst, mean = m["kill_loss"]
        lines.append(
            f"{way:<10} {m['fit_seconds']:>7.2f} {r['bare_over'][way]:>8.3f} {m['writes']:>6} "
            f"{m['waited_seconds']:>8.2f} {m['checkpoint_bytes'] / MIB:>8.0f} {m['peak_rss_bytes'] / MIB:>7.0f}Mi "
            f"{worst:>19.1f} {mean:>7.1f}"
        )
    pl = r["ways"]["linear_pl"]
    lines.append(
        f"linear_pl: {pl['done_seconds']:.2f} s until its last checkpoint was on disk and results.json written "
        f"(bare/that {r['bare_over_linear_pl_done']:.3f}); its writer thread used {pl['writer_cpu_seconds']:.2f} s "
        f"of CPU beside training; stopped_because {pl['stopped_because']}"
    )
    if pl["note"]:
        lines.append(f"linear_pl said: {pl['note']}")
    lines.append(
        f"(bare: Trainer.fit, no logger or checkpoints; modelckpt: the same with ModelCheckpoint(every_n_train_steps="
        f"{r['every_n_steps']}); linear_pl: scripts/train.py's run with its defaults, --trainer.max_steps "
        f"{r['steps']}; waited: the training thread's time in checkpoint saves; kill loses: the training since the "
        "newest checkpoint on disk, for a kill at a random moment of the fit; goal bare/linear_pl >= 0.97, "
        "linear_pl's peak RSS <= bare's + one checkpoint)"
    )
    return lines
