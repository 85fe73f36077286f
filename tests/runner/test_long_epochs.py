"""Long epochs: last.ckpt within an epoch, a signal that stops after the step under way, and a resume
within an epoch that ends bit for bit where a run never interrupted ends.

The model and data are a user's file, written as a Lightning user writes them (a DataLoader over a
TensorDataset with shuffle=True, Dropout drawing from the global generator), given to train.py as
``--model usermodel.Wide --data usermodel.Rows`` from the run's directory.
"""

import contextlib
import io
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from linear_pl.runner.cli import cli_main
from linear_pl.runner.loader_state import resumable
from runner.commands import ROOT, process_env, script_command

USER_MODULE = """
import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class Wide(L.LightningModule):
    def __init__(self, lr: float = 0.001):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self.net(x).squeeze(-1), y)
        self.log("train/loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", F.mse_loss(self.net(x).squeeze(-1), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)


class Rows(L.LightningDataModule):
    def __init__(self, num_samples: int = 5000, batch_size: int = 2, num_workers: int = 0):
        super().__init__()
        self.num_samples, self.batch_size, self.num_workers = num_samples, batch_size, num_workers

    def setup(self, stage=None):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(self.num_samples + 200, 8, generator=g)
        y = x @ torch.arange(1.0, 9.0) + 0.1 * torch.randn(len(x), generator=g)
        self.train_set = TensorDataset(x[:-200], y[:-200])
        self.val_set = TensorDataset(x[-200:], y[-200:])

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=200)
"""

STEPS_PER_EPOCH = 2500  # 5000 samples at batch 2
FLAGS = ["--model", "usermodel.Wide", "--data", "usermodel.Rows", "--max_epochs", "2", "--log_every_n_epochs", "1",
         "--checkpoint_every_seconds", "0.5"]  # fmt: skip
DDP = ["--accelerator", "cpu", "--devices", "2", "--strategy", "ddp"]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """The user's directory: their model file, and each run's root beneath it."""
    home = tmp_path_factory.mktemp("long_epochs")
    (home / "usermodel.py").write_text(USER_MODULE)
    return home


def train_in(home: Path, *flags: str) -> str:
    """train.py in this process, from ``home`` (where the user's module is): what it printed to stderr, then
    every warning it raised, as Python prints them."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings(record=True) as raised:
        warnings.simplefilter("always")
        patch.chdir(home)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = cli_main(list(flags))
    assert status == 0, err.getvalue()
    return err.getvalue() + "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in raised)


def train_process(home: Path, *flags: str) -> None:
    run = subprocess.run(script_command("train", *flags), cwd=home, env=process_env(), capture_output=True,
                         text=True, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr


def last_ckpt(home: Path, root: str) -> Path:
    return home / root / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"


def wait_for_refreshes(path: Path, count: int, proc: subprocess.Popen) -> None:
    """Until ``path`` has been written ``count`` times (the run is then within its first epoch)."""
    seen, stamp = 0, None
    while seen < count:
        assert proc.poll() is None, "the run ended before its checkpoints were refreshed"
        if path.exists() and path.stat().st_mtime_ns != stamp:
            stamp, seen = path.stat().st_mtime_ns, seen + 1
        time.sleep(0.01)


def assert_same_training_state(ours: Path, theirs: Path) -> None:
    """Every weight and every optimizer buffer equal, bit for bit, and the same step."""
    a, b = torch.load(ours, weights_only=True), torch.load(theirs, weights_only=True)
    assert a["global_step"] == b["global_step"]
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    buffers_a, buffers_b = a["optimizer_states"][0]["state"], b["optimizer_states"][0]["state"]
    assert buffers_a.keys() == buffers_b.keys()
    for index, state in buffers_a.items():
        for name, value in state.items():
            assert torch.equal(value, buffers_b[index][name]), (index, name)


@pytest.fixture(scope="module")
def uninterrupted(home) -> Path:
    train_in(home, *FLAGS, "--default_root_dir", "whole")
    return last_ckpt(home, "whole")


def test_a_users_shuffling_dataloader_resumes_within_an_epoch():
    # In-process: the batches after a state_dict, from a new loader given it, are the ones the first
    # would have served, and torch's random state after them is where the first left it.
    data = TensorDataset(torch.arange(40.0))
    torch.manual_seed(3)
    first = resumable(DataLoader(data, batch_size=3, shuffle=True))
    batches = iter(first)
    head = [next(batches)[0] for _ in range(4)]
    state, rng = first.state_dict(), torch.get_rng_state()
    rest = [b[0] for b in batches]
    assert state["taken"] == 4 and len(head) + len(rest) == 14

    torch.manual_seed(99)  # a new process: another random state until the checkpoint's is set
    second = resumable(DataLoader(data, batch_size=3, shuffle=True))
    second.load_state_dict(state)
    torch.set_rng_state(rng)
    resumed = iter(second)
    assert torch.equal(torch.get_rng_state(), rng)  # replaying the epoch's draws left no trace
    replayed = [b[0] for b in resumed]
    assert len(replayed) == len(rest) and all(torch.equal(x, y) for x, y in zip(replayed, rest))
    assert second.state_dict()["taken"] == 14


class InterruptAtStep(L.Callback):
    """Sends this process SIGINT after training step 1000 of 2500 in the first epoch, as Ctrl-C would."""

    STEP = 1000

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.STEP:
            signal.raise_signal(signal.SIGINT)


@pytest.mark.slow
def test_sigint_within_an_epoch_stops_after_the_step_and_continuing_is_bit_identical(
    home, uninterrupted, monkeypatch, capsys
):
    monkeypatch.chdir(home)
    monkeypatch.setattr(sys, "argv", [str(ROOT / "scripts" / "train.py")])  # as a user started it
    status = cli_main(
        [*FLAGS, "--default_root_dir", "cut", "--trainer.callbacks+=runner.test_long_epochs.InterruptAtStep"]
    )
    err = capsys.readouterr().err
    assert status == 130, err

    path = last_ckpt(home, "cut")
    line = re.search(r"Interrupted \(SIGINT\) at step (\d+) \(batch \d+/2500 of epoch 1\): .* continue with: (.*)", err)
    assert line, err
    step = int(line[1])
    # Saved where it stopped: after the step under way (the signal came as step 1000 ended), not the epoch's end.
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["global_step"] == step and step in (InterruptAtStep.STEP, InterruptAtStep.STEP + 1)
    assert checkpoint["loops"]["fit_loop"]["epoch_progress"]["current"]["completed"] == 0
    results = (path.parent.parent / "results.json").read_text()
    assert '"stopped_because": "interrupted"' in results

    python, script, *flags = line[2].split()  # the command as started: the script's path as it was given
    assert (python, script) == ("python", str(ROOT / "scripts" / "train.py"))
    continued = train_in(home, *flags)  # the callback again: it counts global steps, past 1000 from the start
    assert "resum" not in continued.lower() and "Warning" not in continued  # no warning, no line
    assert_same_training_state(path, uninterrupted)


@pytest.mark.slow
def test_sigkill_within_an_epoch_leaves_a_checkpoint_that_resumes_bit_identical(home, uninterrupted):
    proc = subprocess.Popen(script_command("train", *FLAGS, "--default_root_dir", "killed"), cwd=home,
                            env=process_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    path = last_ckpt(home, "killed")
    wait_for_refreshes(path, 3, proc)
    proc.kill()
    assert proc.wait() == -signal.SIGKILL
    checkpoint = torch.load(path, weights_only=True)  # loadable, and saved within the first epoch
    assert 0 < checkpoint["global_step"] < STEPS_PER_EPOCH
    assert checkpoint["loops"]["fit_loop"]["epoch_progress"]["current"]["completed"] == 0
    train_in(home, *FLAGS, "--default_root_dir", "killed", "--ckpt_path", "last")
    assert_same_training_state(path, uninterrupted)


@pytest.mark.slow
def test_ddp_sigint_within_an_epoch_and_continuing_is_bit_identical(home):
    # Two CPU processes; Ctrl-C reaches both (the terminal's process group). 3000 samples: 750 steps
    # an epoch on each rank.
    flags = [*FLAGS, *DDP, "--data.num_samples", "3000"]
    train_process(home, *flags, "--default_root_dir", "ddp_whole")
    proc = subprocess.Popen(script_command("train", *flags, "--default_root_dir", "ddp_cut"), cwd=home,
                            env=process_env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    path = last_ckpt(home, "ddp_cut")
    wait_for_refreshes(path, 2, proc)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    step = int(re.search(r"Interrupted \(SIGINT\) at step (\d+) \(batch \d+/750 of epoch 1\)", err)[1])
    assert torch.load(path, weights_only=True)["global_step"] == step
    train_process(home, *flags, "--default_root_dir", "ddp_cut", "--ckpt_path", "last")
    assert_same_training_state(path, last_ckpt(home, "ddp_whole"))
