"""How fast is linear_pl? The answer, Lightning's floor, a classifier, a plain script's pace, large files, sweeps,
a larger model.

- ``answer``: the default run over data seeds 0..N-1, with preconditioning and without: epochs and
  time to recover the weights; the whole command against ``examples/tutorial1.py``.
- ``floor``: each workload trained three ways on the same tensors, in one process: the tutorial's
  plain loop batched by slicing, a bare LightningModule (logger, checkpoints, progress bar off:
  Lightning's own floor), and linear_pl's ``Trainer.fit`` built by ``build_run`` as
  ``scripts/train.py`` builds it. ``fit`` alone, best of ``--repeats`` rounds; the data module draws
  its data before the clock starts (``setup`` draws once).
- ``classifier``: what the run machinery costs a model it did not write: ``examples/digits.py``'s
  ``DigitsCNN`` on ``Digits``, seed 0, ``--epochs`` epochs, by a bare Trainer (logger, checkpoints,
  progress bar, summary, sanity check off) and by ``build_run`` as ``scripts/train.py`` builds it.
  Both validate every epoch (``--log_every_n_epochs 1``). ``fit`` alone, best of ``--repeats`` rounds
  alternating which way goes first; each fit loads its data (``Digits.setup`` reloads, and fit calls it).
- ``scale``: the whole command, imports and data included, of ``scripts/train.py`` against
  ``examples/plain_script.py`` on the ``large`` workload: wall time and peak RSS of each process; and
  the time to import torch, and Lightning, in a new process.
- ``files``: a generated table of ``--file_rows`` rows (1M) x 20 features + target as CSV and as
  Parquet: the whole command on it minus the same on its first 1,000 rows (the load cost), against
  polars' own read into a float32 tensor; the command's peak RSS.
- ``sweep``: three ``scripts/sweep.py`` studies on the ``mlp-sine`` preset with ``--seed`` ``--sweep_seed``, each in a
  directory of its own: a grid of 10 log-spaced learning rates x 3 hidden sizes, TPE over the same
  space (lr a log range from the grid's lowest to its highest) with median pruning, and the same TPE
  without pruning. Each's best val/loss, trial states and trial-epochs (trials.csv); TPE's best against
  the grid's, and the share of the trial-epochs pruning saves. And TPE with pruning over a wide range of
  rates (1e-4 to 0.3, most of which diverge): how many trials after the 10th diverged.
- ``larger``: a 50M-parameter MLP with Adam, three ways: bare, with Lightning's ModelCheckpoint, and
  linear_pl's run (``linear_pl.benchmark_larger``).
"""

import argparse
import contextlib
import csv
import gc
import importlib
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
from types import ModuleType

import lightning as L
import torch
import yaml
from torch.nn import functional as F
from torch.utils.data import DataLoader

from linear_pl.benchmark_flags import SECTIONS, SMALL_ROWS, WORKLOAD_SIZES
from linear_pl.benchmark_larger import format_larger, larger
from linear_pl.regression.closed_form import SAFETY_FACTOR, stable_lr
from linear_pl.regression.data import TUTORIAL_WEIGHTS, SlicedBatches, SyntheticDataModule
from linear_pl.regression.model import DotProduct
from linear_pl.runner.cli import build_run
from linear_pl.runner.noise import silence_known_noise
from linear_pl.runner.run import Run

GIB = 1 << 30
REPO = Path(__file__).resolve().parent.parent
TRAIN = [sys.executable, str(REPO / "scripts" / "train.py")]
DIGITS = ["--model", "examples.digits.DigitsCNN", "--data", "examples.digits.Digits", "--monitor", "val/acc",
          "--mode", "max"]  # fmt: skip


@dataclass
class Workload:
    name: str
    num_samples: int
    num_features: int
    batch_size: int
    epochs: int

    @property
    def weights(self) -> list[float]:
        return [TUTORIAL_WEIGHTS[i % len(TUTORIAL_WEIGHTS)] for i in range(self.num_features)]

    def flags(self, lr: float) -> list[str]:
        """scripts/train.py's flags for this workload (noise keeps it from stopping early as converged)."""
        return [
            "--true_weights", json.dumps(self.weights), "--num_samples", str(self.num_samples),
            "--batch_size", str(self.batch_size), "--max_epochs", str(self.epochs), "--noise_std", "1.0",
            "--lr", repr(lr), "--precondition", "none", "--patience", "null", "--seed", "0",
        ]  # fmt: skip


WORKLOADS = {name: Workload(name, *size) for name, size in WORKLOAD_SIZES.items()}


def peak_rss_reset() -> None:
    """Reset the process's peak-RSS mark (Linux only; elsewhere the peak covers the whole run)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_rss_bytes() -> int:
    """The process's peak resident memory since the last reset, in bytes (Linux)."""
    return int(re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024


# Runs a script and, at exit, writes its own peak RSS (VmHWM, kB) to the file named by the variable: the
# child's rusage would count the pages it shared with this (large) process between fork and exec.
_MEASURED = """import atexit, os, re, runpy, sys
def _peak():
    with open(os.environ["LINEAR_PL_PEAK_RSS"], "w") as f:
        f.write(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
atexit.register(_peak)
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(sys.argv[0]))
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_command(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one Python script's whole command, in its own process, with
    ``env`` over this process's environment."""
    with tempfile.NamedTemporaryFile() as peak:
        env = {**os.environ, **(env or {}), "LINEAR_PL_PEAK_RSS": peak.name}
        start = time.perf_counter()
        proc = subprocess.run([command[0], "-c", _MEASURED, *command[1:]], cwd=cwd, env=env, capture_output=True)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited with status {proc.returncode}: {proc.stderr[-500:]!r}")
        return seconds, int(Path(peak.name).read_text()) * 1024


def time_to_answer(seeds: int, extra: list[str], repeats: int) -> dict:
    """The default run for each seed, preconditioned and raw; tutorial 1's script for comparison."""
    rows = {}
    for mode in ("auto", "none"):
        for seed in range(seeds):
            with tempfile.TemporaryDirectory() as root:
                flags = ["--seed", str(seed), "--precondition", mode, "--default_root_dir", root, *extra]
                wall, _ = run_command([*TRAIN, *flags], Path(root))
                results = json.loads(next(Path(root).glob("lightning_logs/version_*/results.json")).read_text())
            recovered = results["max_abs_error"] is not None and results["max_abs_error"] <= 0.01
            rows.setdefault(mode, []).append(
                {"seed": seed, "epochs": results["epochs"], "max_abs_error": results["max_abs_error"],
                 "recovered": recovered, "fit_seconds": results["fit_seconds"], "wall_seconds": wall}
            )  # fmt: skip
    with tempfile.TemporaryDirectory() as cwd:
        tutorial = statistics.median(run_command([sys.executable, str(REPO / "examples" / "tutorial1.py")], cwd)[0]
                                     for _ in range(repeats))  # fmt: skip
    ours = statistics.median(row["wall_seconds"] for row in rows["auto"])
    return {"runs": rows, "tutorial1_wall_seconds": tutorial, "wall_ratio": ours / tutorial}


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


def linear_pl_cli(workload: Workload, lr: float, accelerator: str, root: str) -> Run:
    """linear_pl as scripts/train.py builds it, its data drawn (``setup`` draws once; fit keeps it)."""
    cli = build_run([*workload.flags(lr), "--accelerator", accelerator, "--default_root_dir", root])
    cli.datamodule.setup("fit")
    return cli


def linear_pl_fit(cli: Run) -> float:
    """``Trainer.fit`` of a CLI made by :func:`linear_pl_cli`; returns seconds."""
    with contextlib.redirect_stdout(io.StringIO()):  # the progress lines
        start = time.perf_counter()
        cli.trainer.fit(cli.model, cli.datamodule)
        cli.model.weight.sum().item()  # waits for an accelerator's queued work
        return time.perf_counter() - start


def floor(workload: Workload, accelerator: str, repeats: int) -> dict:
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
    cli = linear_pl_cli(workload, lr, accelerator, root)  # a fresh Trainer each round: it fits once
    device = cli.trainer.strategy.root_device
    x, y = cli.datamodule.train_x.to(device), cli.datamodule.train_y.to(device)
    ways = {
        "plain": lambda: plain_loop(x, y, lr, workload.batch_size, workload.epochs),
        "bare": lambda: bare_lightning(x, y, lr, workload.batch_size, workload.epochs, accelerator),
        "linear_pl": lambda: linear_pl_fit(cli),  # the same tensors: setup kept the data it drew
    }
    measured = {}
    for way, train in ways.items():
        peak_rss_reset()
        seconds = train()
        measured[way] = (seconds, peak_rss_bytes())
    return measured


def scale(workload: Workload, repeats: int) -> dict:
    """The whole command, imports and data included, of linear_pl and of a plain script, alternating, the best
    of ``repeats`` each (two runs of one command differ by up to 20% here: noise only ever adds time)."""
    lr = 1e-12  # the speed does not depend on it; it keeps both from diverging
    plain = [
        sys.executable, str(REPO / "examples" / "plain_script.py"), "--num_samples", str(workload.num_samples),
        "--num_features", str(workload.num_features), "--batch_size", str(workload.batch_size),
        "--max_epochs", str(workload.epochs), "--lr", repr(lr),
    ]  # fmt: skip
    gc.collect()
    ours_seconds = plain_seconds = float("inf")
    ours_rss = plain_rss = 0
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as root:
            seconds, rss = run_command([*TRAIN, *workload.flags(lr), "--default_root_dir", root], Path(root))
            ours_seconds, ours_rss = min(ours_seconds, seconds), max(ours_rss, rss)
            seconds, rss = run_command(plain, Path(root))
            plain_seconds, plain_rss = min(plain_seconds, seconds), max(plain_rss, rss)
    data_bytes = (workload.num_samples + 10) * (workload.num_features + 1) * 4
    # The part no template on Lightning can avoid, on its own row: importing it, beside torch alone.
    imports = {"torch": import_seconds("torch", repeats), "lightning": import_seconds("lightning", repeats)}
    return {
        "import_seconds": imports, "repeats": repeats,
        **asdict(workload),
        "linear_pl_seconds": ours_seconds, "plain_script_seconds": plain_seconds,
        "plain_over_linear_pl": plain_seconds / ours_seconds,
        "linear_pl_peak_rss_bytes": ours_rss, "plain_script_peak_rss_bytes": plain_rss,
        "data_bytes": data_bytes, "rss_goal_bytes": 1.5 * data_bytes + GIB,
    }  # fmt: skip


def import_seconds(module: str, repeats: int = 3) -> float:
    """Wall seconds of ``python -c "import module"`` in a new process, best of ``repeats``."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


# The files section's table: 20 features and a target, 1,000 rows for the command's fixed costs.
FILE_FEATURES = 20
_POLARS_READ = """
import sys, time
import polars as pl, torch
start = time.perf_counter()
read = pl.read_csv if sys.argv[1].endswith(".csv") else pl.read_parquet
read(sys.argv[1]).to_torch(dtype=pl.Float32)
print(time.perf_counter() - start)
"""


def files(rows: int) -> list[dict]:
    """A generated table of ``rows`` x 20 features + target as CSV and as Parquet: the whole command on it
    against the same command on its first 1,000 rows (the load cost), polars' own read of it into a
    float32 tensor (imports excluded), and the command's peak RSS."""
    import polars as pl  # noqa: PLC0415 -- only this section needs it

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(rows, FILE_FEATURES, generator=generator)
    y = x @ torch.randn(FILE_FEATURES, generator=generator) + 0.1 * torch.randn(rows, generator=generator)
    table = pl.DataFrame({**{f"x{i}": x[:, i].numpy() for i in range(FILE_FEATURES)}, "y": y.numpy()})
    del x, y
    flags = ["--data", "csv", "--data.target_column", "y", "--bias", "--batch_size", "1024", "--max_epochs", "1"]
    results = []
    with tempfile.TemporaryDirectory() as root:
        for kind in ("csv", "parquet"):
            big, small = Path(root) / f"big.{kind}", Path(root) / f"small.{kind}"
            for frame, path in ((table, big), (table.head(SMALL_ROWS), small)):
                frame.write_csv(path) if kind == "csv" else frame.write_parquet(path)
            command = [*TRAIN, *flags, "--default_root_dir", root, "--data.path"]
            big_seconds, big_rss = run_command([*command, str(big)], Path(root))
            small_seconds, _ = run_command([*command, str(small)], Path(root))
            read = subprocess.run([sys.executable, "-c", _POLARS_READ, str(big)], check=True, capture_output=True)
            data_bytes = rows * (FILE_FEATURES + 1) * 4
            results.append({
                "kind": kind, "rows": rows, "features": FILE_FEATURES, "file_bytes": big.stat().st_size,
                "command_seconds": big_seconds, "small_command_seconds": small_seconds,
                "load_seconds": big_seconds - small_seconds, "polars_read_seconds": float(read.stdout),
                "peak_rss_bytes": big_rss, "data_bytes": data_bytes, "rss_goal_bytes": 2 * data_bytes + 1.5 * GIB,
            })  # fmt: skip
    return results


# The sweep section: the MLP on the sine target over 10 log-spaced rates from 1e-4 (slow: val/loss 12-37 after
# 60 epochs) to 3e-3 (81-233, or diverged) x 3 sizes, the best between (3.6-4.6 at 4.5e-4-1e-3 with two
# hidden layers); and TPE over the same. Above about 4e-3 every run diverges at once: a failed trial, which
# TPE does not learn from -- over 1e-4-1e-2 it spent 12 of 30 trials up there -- so the range stops below.
# 60 epochs (SWEEP_EPOCHS; 30 trials, SWEEP_TRIALS, both in benchmark_flags): the three sweeps take about
# 5 minutes here.
SWEEP_PRESET = "mlp-sine"
SWEEP_LRS = [float(f"{1e-4 * 30 ** (i / 9):.3g}") for i in range(10)]
SWEEP_HIDDEN_SIZES = [[32], [64, 64], [128, 128]]
# And a wide study: TPE with the median pruner over rates 1e-4-0.3, more than half of whose log range diverges.
# A diverged trial is told to Optuna as pruned (at its last reported value), which TPE learns from; as FAIL,
# which it ignores, it kept proposing rates that diverge (docs/speed.md has both).
SWEEPS = {"grid": ("grid", "none"), "tpe-median": ("tpe", "median"), "tpe-none": ("tpe", "none")}
WIDE_SWEEP, WIDE_LRS, WIDE_AFTER = "tpe-wide", (1e-4, 0.3), 10
STATES = ("COMPLETE", "PRUNED", "DIVERGED", "FAIL")


def sweep_space(sampler: str, lrs: tuple[float, float] | None = None) -> dict:
    """The space file's contents: the grid's categoricals, or for TPE the rate as a log range over the grid's
    (or over ``lrs``)."""
    hidden = {"type": "categorical", "choices": SWEEP_HIDDEN_SIZES}
    if sampler == "grid":
        return {"model.lr": {"type": "categorical", "choices": SWEEP_LRS}, "model.hidden_sizes": hidden}
    low, high = lrs or (SWEEP_LRS[0], SWEEP_LRS[-1])
    return {"model.lr": {"type": "float", "low": low, "high": high, "log": True}, "model.hidden_sizes": hidden}


def run_sweep(name: str, trials: int, epochs: int, seed: int) -> dict:
    """One study by scripts/sweep.py in a new directory: its trials.csv summed up, and its wall time."""
    sampler, pruner = SWEEPS.get(name, ("tpe", "median"))
    with tempfile.TemporaryDirectory() as root:
        space = Path(root) / "space.yaml"
        lrs = WIDE_LRS if name == WIDE_SWEEP else None
        space.write_text(yaml.safe_dump(sweep_space(sampler, lrs), sort_keys=False))
        command = [
            sys.executable, str(REPO / "scripts" / "sweep.py"), "--space", str(space), "--study", name,
            "--n_trials", str(trials), "--sampler", sampler, "--pruner", pruner, "--preset", SWEEP_PRESET,
            "--max_epochs", str(epochs), "--seed", str(seed), "--default_root_dir", root,
        ]  # fmt: skip
        seconds, _ = run_command(command, Path(root))
        with open(Path(root) / "sweeps" / name / "trials.csv", newline="") as file:
            rows = list(csv.DictReader(file))
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    best = min(complete, key=lambda r: float(r["value"]), default=None)
    return {
        "name": name, "sampler": sampler, "pruner": pruner, "trials": len(rows),
        "states": {state: sum(r["state"] == state for r in rows) for state in STATES},
        "points": len({(r["model.lr"], r["model.hidden_sizes"]) for r in rows}),  # distinct params
        "trial_epochs": sum(int(r["epochs"] or 0) for r in rows),  # empty: failed before an epoch
        # Trials numbered WIDE_AFTER and on (the sampler's choices, past its first trials) that diverged.
        "diverged_later": sum(r["state"] == "DIVERGED" for r in rows if int(r["number"]) >= WIDE_AFTER),
        "later": sum(int(r["number"]) >= WIDE_AFTER for r in rows),
        "best_value": float(best["value"]) if best else None,
        "best_params": {"model.lr": float(best["model.lr"]), "model.hidden_sizes": best["model.hidden_sizes"]}
        if best else None,
        "wall_seconds": seconds,
    }  # fmt: skip


def sweep(trials: int, epochs: int, seed: int) -> dict:
    """The grid (every point once, up to ``trials``), TPE with median pruning and TPE without, each ``trials``
    trials of ``epochs`` epochs at most; TPE's best over the grid's, and the trial-epochs pruning saves. And
    the wide study: how many of its trials after the first WIDE_AFTER diverged."""
    grid_trials = min(trials, len(SWEEP_LRS) * len(SWEEP_HIDDEN_SIZES))
    rows = [run_sweep(name, grid_trials if name == "grid" else trials, epochs, seed) for name in SWEEPS]
    grid, pruned, unpruned = rows
    return {
        "preset": SWEEP_PRESET, "epochs": epochs, "trials": trials, "seed": seed, "lrs": SWEEP_LRS,
        "hidden_sizes": SWEEP_HIDDEN_SIZES, "sweeps": rows,
        "wide": {"lrs": list(WIDE_LRS), "after": WIDE_AFTER, **run_sweep(WIDE_SWEEP, trials, epochs, seed)},
        "tpe_over_grid": ratio(pruned["best_value"], grid["best_value"]),
        "unpruned_tpe_over_grid": ratio(unpruned["best_value"], grid["best_value"]),
        "pruning_saves": 1 - pruned["trial_epochs"] / unpruned["trial_epochs"] if unpruned["trial_epochs"] else None,
    }  # fmt: skip


def ratio(value: float | None, reference: float | None) -> float | None:
    """``value / reference``; None where either is missing (a study with no complete trial)."""
    return None if value is None or not reference else value / reference


def digits_example() -> ModuleType:
    """``examples/digits.py`` as the module ``examples.digits`` (what --model imports), with
    the repository root on sys.path, found from this file's location: the benchmark runs from anywhere
    (cli_main appends the working directory instead)."""
    if str(REPO) not in sys.path:
        sys.path.append(str(REPO))
    return importlib.import_module("examples.digits")


def digits_bare(epochs: int, accelerator: str) -> dict:
    """DigitsCNN's ``Trainer.fit`` on Digits by a bare Trainer, seeded as the run seeds (--seed 0)."""
    digits = digits_example()
    L.seed_everything(0, workers=True)  # as LightningCLI does, before the model draws its weights
    model, data = digits.DigitsCNN(), digits.Digits(seed=0)
    # Validates every epoch: Lightning's default check_val_every_n_epoch=1.
    trainer = L.Trainer(
        accelerator=accelerator, devices=1, max_epochs=epochs, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    start = time.perf_counter()
    trainer.fit(model, data)
    val_acc = float(trainer.callback_metrics["val/acc"])  # waits for an accelerator's queued work
    return {"seconds": time.perf_counter() - start, "val_acc": val_acc, "epochs": trainer.current_epoch}


def digits_linear_pl(epochs: int, accelerator: str, root: str) -> dict:
    """DigitsCNN's ``Trainer.fit`` on Digits as scripts/train.py builds it, validating every epoch.

    ``--patience`` is the number of epochs, so that its early stopping runs but cannot end the run
    before the bare Trainer's: both train the same epochs.
    """
    flags = ["--max_epochs", str(epochs), "--log_every_n_epochs", "1", "--patience", str(epochs)]
    cli = build_run([*DIGITS, *flags, "--accelerator", accelerator, "--devices", "1", "--default_root_dir", root])
    with contextlib.redirect_stdout(io.StringIO()):  # the progress lines
        start = time.perf_counter()
        cli.trainer.fit(cli.model, cli.datamodule)
        val_acc = float(cli.trainer.callback_metrics["val/acc"])  # waits for an accelerator's queued work
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "val_acc": val_acc, "epochs": cli.trainer.current_epoch}


def classifier(epochs: int, accelerator: str, repeats: int) -> dict:
    """DigitsCNN on Digits trained by a bare Trainer and by linear_pl, rounds alternating; the best time counts."""
    # sklearn's first load (its imports, the file's first read) before any clock: for neither way.
    digits_example().Digits().setup("fit")
    seconds, val_acc, epochs_run = {}, {}, {}
    with tempfile.TemporaryDirectory() as root:
        ways = {
            "bare": lambda: digits_bare(epochs, accelerator),
            "linear_pl": lambda: digits_linear_pl(epochs, accelerator, root),
        }
        round_ratios = []
        for round_ in range(repeats):
            this_round = {}
            for way in sorted(ways, reverse=round_ % 2 == 1):  # bare first, then linear_pl first, ...
                measured = ways[way]()  # a fresh model, data module and Trainer, seeded alike
                gc.collect()
                this_round[way] = measured["seconds"]
                seconds[way] = min(seconds.get(way, float("inf")), measured["seconds"])
                val_acc[way], epochs_run[way] = measured["val_acc"], measured["epochs"]
            # Two fits a few seconds apart differ by up to 20% here: the two ways of one round share
            # the machine's mood, so the median of the rounds' ratios is steadier than best against best.
            round_ratios.append(this_round["bare"] / this_round["linear_pl"])
    return {
        "model": "examples.digits.DigitsCNN", "data": "examples.digits.Digits", "epochs": epochs,
        "repeats": repeats, "validate_every_n_epochs": 1, "epochs_run": epochs_run, "fit_seconds": seconds,
        "bare_over_linear_pl": seconds["bare"] / seconds["linear_pl"], "round_ratios": round_ratios,
        "median_round_ratio": statistics.median(round_ratios), "val_acc": val_acc,
    }  # fmt: skip


def format_report(report: dict) -> str:
    """The printed tables."""
    lines = [f"machine: {report['machine']}", f"threads: {report['threads']} ({report['threads_from']})"]
    if answer := report.get("answer"):
        lines += ["", "time to the answer (default run, seeds 0..N-1):"]
        for mode, rows in answer["runs"].items():
            epochs = [r["epochs"] for r in rows]
            walls = [r["wall_seconds"] for r in rows]
            fits = [r["fit_seconds"] for r in rows]
            lines.append(
                f"  --precondition {mode:<5} recovered {sum(r['recovered'] for r in rows)}/{len(rows)}; "
                f"epochs {min(epochs)}-{max(epochs)} (median {statistics.median(epochs):g}); "
                f"Trainer.fit {min(fits):.2f}-{max(fits):.2f} s; whole command median {statistics.median(walls):.2f} s"
            )
        lines.append(
            f"  examples/tutorial1.py median {answer['tutorial1_wall_seconds']:.2f} s; "
            f"default run / tutorial1 = {answer['wall_ratio']:.2f} (goal <= 1.5)"
        )
    if rows := report.get("floor"):
        lines += ["", f"{'workload':<9} {'N':>9} {'d':>4} {'batch':>6} {'epochs':>6} {'plain/s':>10} {'bare/s':>10} "
                      f"{'linear_pl/s':>11} {'pl/plain':>8} {'pl/bare':>7} {'peak RSS':>9}"]  # fmt: skip
        for r in rows:
            sps = r["samples_per_second"]
            lines.append(
                f"{r['name']:<9} {r['num_samples']:>9} {r['num_features']:>4} {r['batch_size']:>6} {r['epochs']:>6} "
                f"{sps['plain']:>10.3g} {sps['bare']:>10.3g} {sps['linear_pl']:>11.3g} "
                f"{r['linear_pl_over_plain']:>8.2f} {r['linear_pl_over_bare']:>7.2f} "
                f"{r['peak_rss_bytes']['linear_pl'] / GIB:>7.2f}Gi"
            )
        lines.append("(samples/s of Trainer.fit or the loop alone, best of rounds; goal pl/bare >= 0.9)")
    if r := report.get("classifier"):
        lines += ["", f"{'model':<9} {'epochs':>6} {'bare s':>8} {'linear_pl s':>11} {'bare/pl':>7} "
                      f"{'median':>6} {'bare val/acc':>12} {'pl val/acc':>10}"]  # fmt: skip
        seconds, acc = r["fit_seconds"], r["val_acc"]
        lines.append(
            f"{'DigitsCNN':<9} {r['epochs']:>6} {seconds['bare']:>8.3f} {seconds['linear_pl']:>11.3f} "
            f"{r['bare_over_linear_pl']:>7.2f} {r['median_round_ratio']:>6.2f} {acc['bare']:>12.4f} "
            f"{acc['linear_pl']:>10.4f}"
        )
        lines.append(
            f"(examples/digits.py; Trainer.fit seconds alone, best of {r['repeats']} rounds alternating the ways, "
            "and the median of the rounds' bare/pl; both validate every epoch, linear_pl with "
            "--log_every_n_epochs 1; goal bare/pl >= 0.95)"
        )
    if rows := report.get("files"):
        lines += ["", f"{'file':<8} {'rows':>9} {'MB':>6} {'command s':>9} {'1k rows s':>9} {'load s':>7} "
                      f"{'polars s':>8} {'load/polars':>11} {'peak RSS':>9} {'RSS goal':>9}"]  # fmt: skip
        for r in rows:
            lines.append(
                f"{r['kind']:<8} {r['rows']:>9} {r['file_bytes'] / 1e6:>6.0f} {r['command_seconds']:>9.2f} "
                f"{r['small_command_seconds']:>9.2f} {r['load_seconds']:>7.2f} {r['polars_read_seconds']:>8.2f} "
                f"{r['load_seconds'] / r['polars_read_seconds']:>11.2f} {r['peak_rss_bytes'] / GIB:>7.2f}Gi "
                f"{r['rss_goal_bytes'] / GIB:>7.2f}Gi"
            )
        lines.append(
            f"(scripts/train.py --data csv --bias --batch_size 1024 --max_epochs 1 on a generated "
            f"{FILE_FEATURES}-feature table, against the same on its first 1,000 rows; polars' own read into a "
            "float32 tensor; goal for CSV: load/polars <= 3, peak RSS <= 2 x data + 1.5 GiB)"
        )
    if rows := report.get("scale"):
        lines.append("")
        for r in rows:
            lines.append(
                f"whole command, {r['name']} ({r['num_samples']} x {r['num_features']}, {r['epochs']} epochs): "
                f"best of {r['repeats']}: scripts/train.py {r['linear_pl_seconds']:.2f} s, examples/plain_script.py "
                f"{r['plain_script_seconds']:.2f} s, plain/linear_pl {r['plain_over_linear_pl']:.2f} (goal >= 0.8); "
                f"peak RSS {r['linear_pl_peak_rss_bytes'] / GIB:.2f} Gi vs "
                f"{r['plain_script_peak_rss_bytes'] / GIB:.2f} Gi (goal <= {r['rss_goal_bytes'] / GIB:.2f} Gi)"
            )
            imports = r["import_seconds"]
            lines.append(
                f"importing, in a new process: torch {imports['torch']:.2f} s, lightning {imports['lightning']:.2f} s "
                "(torch included): the part of the command no Lightning template avoids"
            )
    if r := report.get("sweep"):
        header = f"{'sweep':<10} {'trials':>6} {'points':>6} {'complete':>8} {'pruned':>6} {'diverged':>8} "
        header += f"{'failed':>6} {'epochs':>6} {'wall s':>7} {'best val/loss':>13} {'at lr':>9} {'hidden':>10}"
        lines += ["", header]
        for row in [*r["sweeps"], r["wide"]]:
            states, best = row["states"], row["best_params"]
            at = f"{best['model.lr']:>9.3g} {best['model.hidden_sizes']:>10}" if best else f"{'-':>9} {'-':>10}"
            lines.append(
                f"{row['name']:<10} {row['trials']:>6} {row['points']:>6} {states['COMPLETE']:>8} "
                f"{states['PRUNED']:>6} {states['DIVERGED']:>8} {states['FAIL']:>6} {row['trial_epochs']:>6} "
                f"{row['wall_seconds']:>7.1f} {shown(row['best_value'], '.4g'):>13} {at}"
            )
        epochs = {row["name"]: row["trial_epochs"] for row in r["sweeps"]}
        lines.append(
            f"tpe-median best / grid best {shown(r['tpe_over_grid'])} (goal <= 1; tpe-none's "
            f"{shown(r['unpruned_tpe_over_grid'])}); pruning saves 1 - {epochs['tpe-median']}/{epochs['tpe-none']} "
            f"= {shown(r['pruning_saves'])} of the trial-epochs (goal >= 0.33)"
        )
        hidden = ", ".join(json.dumps(h) for h in r["hidden_sizes"])
        lines.append(
            f"(scripts/sweep.py --preset {r['preset']} --max_epochs {r['epochs']} --seed {r['seed']}, "
            f"{r['trials']} trials each; grid: model.lr {len(r['lrs'])} rates {r['lrs'][0]:g}-{r['lrs'][-1]:g} "
            f"log-spaced x model.hidden_sizes {hidden}, every point once, no pruning; TPE: model.lr a log range over "
            "the same; points: distinct params; epochs: the trials' epochs summed; failed: e.g. diverged)"
        )
        wide = r["wide"]
        lines.append(
            f"tpe-wide: model.lr a log range {wide['lrs'][0]:g}-{wide['lrs'][1]:g}, where the MLP diverges above about "
            f"4e-3: {wide['diverged_later']} of its {wide['later']} trials after the first {wide['after']} diverged "
            f"({wide['states']['DIVERGED']} of {wide['trials']} in all)"
        )
        if (grid := r["sweeps"][0])["points"] < grid["trials"]:
            lines.append(f"NOTE: the grid ran {grid['points']} distinct points in {grid['trials']} trials: not a grid")
    if r := report.get("larger"):
        lines += format_larger(r)
    return "\n".join(lines)


def shown(value: float | None, spec: str = ".2f") -> str:
    """A number as ``spec`` formats it, or "-" where there is none (a study with no complete trial)."""
    return "-" if value is None else format(value, spec)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark with benchmark_flags' checked flags; print the tables, and write them as JSON
    with --json FILE."""
    chosen = [Workload("custom", *args.size)] if args.size else []
    chosen += [WORKLOADS[args.workload]] if args.workload else []
    silence_known_noise()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # "GPU available: ..." per Trainer
    sections = [args.section] if args.section else SECTIONS
    if args.one_thread:  # this process, and every command it starts (they inherit the variable)
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)
    omp = os.environ.get("OMP_NUM_THREADS")
    report: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"torch {torch.__version__}, lightning {L.__version__}",
        "threads": torch.get_num_threads(),
        "threads_from": f"OMP_NUM_THREADS={omp}" if omp else "the machine's default",
    }
    if "answer" in sections:
        report["answer"] = time_to_answer(args.seeds, args.train_flags.split(), args.repeats)
    if "floor" in sections:
        report["floor"] = [floor(w, args.accelerator, args.repeats) for w in (chosen or WORKLOADS.values())]
    if "classifier" in sections:
        report["classifier"] = classifier(args.epochs, args.accelerator, args.repeats)
    if "scale" in sections:
        report["scale"] = [scale(w, args.repeats) for w in (chosen or [WORKLOADS["large"]])]
    if "files" in sections:
        report["files"] = files(args.file_rows)
    if "sweep" in sections:
        report["sweep"] = sweep(args.sweep_trials, args.sweep_epochs, args.sweep_seed)
    if "larger" in sections:
        report["larger"] = larger(args.larger_size, args.every_n_steps, args.accelerator, args.repeats)
    print(format_report(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0
