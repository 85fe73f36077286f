"""Runs that survive, on any model: bad input, resume, unusable or unsafe checkpoints, kills."""

import json
import os
import signal
import subprocess
import time

import lightning as L
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from runner.commands import process_env, script_command
from runner.lit_classifier import CLASSIFIER, Classifier

SMALL = ["--num_samples", "600", "--batch_size", "30"]  # 360 to train on: 12 batches an epoch


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--lr", "abc"], 'Parser key "model.lr"'),
        (["--max_epochs", "0"], "--max_epochs 0: must be >= 1"),
        (["--batch_size", "1.5"], "Parser key \"data.batch_size\": Expected a <class 'int'>"),
        (["--accelerator", "abacus"], "--accelerator abacus: unknown; choose one of auto, cpu, gpu"),
        (["--config", "/no/such.yaml"], "File does not exist"),
        (["--ckpt_path", "last"], "--ckpt_path last: no earlier run with a checkpoint"),
        (["--ckpt_path", "/no/such.ckpt"], "--ckpt_path /no/such.ckpt: no such file"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(train, flags, message):
    run = train(*CLASSIFIER, *flags)
    assert run.status == 2
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("error: "), run.stderr
    assert message in run.stderr
    assert run.stdout == ""
    assert not (run.root / "lightning_logs").exists()


def test_invalid_yaml_config(train, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [1,\n")
    run = train(*CLASSIFIER, "--config", str(bad))
    assert run.status == 2 and run.stderr.count("\n") == 1 and "Problems parsing config" in run.stderr


def test_earlier_runs_are_never_overwritten(train):
    first = train(*CLASSIFIER, *SMALL, "--max_epochs", "2").results
    train(*CLASSIFIER, *SMALL, "--max_epochs", "3")
    assert train(*CLASSIFIER, "--max_epochs", "0").status == 2
    runs = sorted(p.name for p in (train(*CLASSIFIER, *SMALL, "--max_epochs", "1").root / "lightning_logs").iterdir())
    assert runs == ["version_0", "version_1", "version_2"]
    assert first["epochs"] == 2


def scalars(run_dir, tag: str) -> list[tuple[int, float]]:
    events = EventAccumulator(str(run_dir))
    events.Reload()
    return [(event.step, event.value) for event in events.Scalars(tag)]


def test_resume_last_continues_the_same_run_bit_identically_with_shuffle(train, tmp_path):
    # The classifier's DataLoader shuffles, and its Dropout draws from the global generator.
    flags = [*CLASSIFIER, *SMALL, "--seed", "3", "--checkpoint_every_seconds", "0", "--log_every_n_epochs", "1"]
    straight = train(*flags, "--max_epochs", "6", "--default_root_dir", str(tmp_path / "straight"))

    root = ["--default_root_dir", str(tmp_path / "resumed")]
    train(*flags, "--max_epochs", "3", *root)
    run = train(*flags, "--max_epochs", "6", "--ckpt_path", "last", *root)
    assert run.status == 0
    assert [p.name for p in (tmp_path / "resumed" / "lightning_logs").iterdir()] == ["version_0"]
    resumed = run.results  # results.json rewritten at the end
    assert resumed["epochs"] == 6 and resumed["global_step"] == 6 * 12
    assert resumed["metrics"] == straight.results["metrics"] and resumed["test"] == straight.results["test"]
    a, b = (
        torch.load(r.run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"] for r in (straight, run)
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # every weight, bit for bit

    # The curve continues: the resumed run's losses are the straight run's, at the same steps.
    assert scalars(run.run_dir, "train/loss") == scalars(straight.run_dir, "train/loss")
    assert [step for step, _ in scalars(run.run_dir, "train/loss")][-1] == 6 * 12 - 1


def test_resume_from_a_given_path(train):
    train(*CLASSIFIER, *SMALL, "--max_epochs", "5")
    ckpt = (
        train(*CLASSIFIER, *SMALL, "--max_epochs", "1").root
        / "lightning_logs"
        / "version_0"
        / "checkpoints"
        / "last.ckpt"
    )
    run = train(*CLASSIFIER, *SMALL, "--max_epochs", "8", "--ckpt_path", str(ckpt))
    assert run.status == 0
    assert sorted(p.name for p in (run.root / "lightning_logs").iterdir()) == ["version_0", "version_1"]
    assert json.loads((ckpt.parent.parent / "results.json").read_text())["epochs"] == 8


def _one_line_refusal(run, *fragments):
    assert run.status == 2, run.stderr
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    for fragment in fragments:
        assert fragment in run.stderr


def test_unusable_checkpoints_are_refused(train, tmp_path):
    good = train(*CLASSIFIER, *SMALL, "--max_epochs", "1").run_dir / "checkpoints" / "last.ckpt"
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[:300])
    text = tmp_path / "text.ckpt"
    text.write_text("not a checkpoint\n")
    for path in (truncated, text):
        _one_line_refusal(train(*CLASSIFIER, "--ckpt_path", str(path)), f"--ckpt_path {path}: not a usable checkpoint")
    # A checkpoint of another model's shape (8 hidden units, not 32).
    _one_line_refusal(train(*CLASSIFIER, "--ckpt_path", str(good), "--hidden_size", "8"), "holds parameters")


class RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_whose_pickle_runs_code_is_refused_and_the_code_never_runs(train, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": RunsACommand(marker)}, evil)
    run = train(*CLASSIFIER, "--ckpt_path", str(evil))
    _one_line_refusal(run, f"--ckpt_path {evil}: not a usable checkpoint", "Weights only load failed")
    assert not marker.exists()


BIG_MODULE = """
import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class Big(L.LightningModule):
    # 2 x 2048 x 2048 weights with Adam: a checkpoint of about 100 MB, long enough to write that a kill lands in it.
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2048, 2048), nn.ReLU(), nn.Linear(2048, 2048), nn.Linear(2048, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self.net(x).squeeze(-1), y)
        self.log("train/loss", loss, on_step=False, on_epoch=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-5)


class Rows(L.LightningDataModule):
    def setup(self, stage=None):
        x = torch.randn(8, 2048, generator=torch.Generator().manual_seed(0))
        self.train_set = TensorDataset(x, x[:, 0])

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=4)
"""


@pytest.mark.slow
def test_sigkill_during_a_checkpoint_write_leaves_the_previous_last_ckpt_loadable(tmp_path):
    (tmp_path / "bigmodel.py").write_text(BIG_MODULE)
    # $TMPDIR on another filesystem is what broke Lightning's own save (its temporary file, moved across).
    env = process_env(TMPDIR="/dev/shm" if os.path.isdir("/dev/shm") else str(tmp_path))
    flags = ["--model", "bigmodel.Big", "--data", "bigmodel.Rows", "--checkpoint_every_seconds", "0"]
    checkpoints = tmp_path / "lightning_logs" / "version_0" / "checkpoints"
    last = checkpoints / "last.ckpt"
    for _ in range(5):  # a write can end between seeing its temporary file and the kill: then again
        resume = ["--ckpt_path", "last"] if last.exists() else []
        proc = subprocess.Popen(script_command("train", *flags, "--max_epochs", "100000", *resume), cwd=tmp_path,
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        deadline = time.monotonic() + 300
        while not last.exists():  # a first checkpoint on disk
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.01)
        partial = []
        while not partial:  # then the next write under way: its temporary file beside last.ckpt
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            partial = [p for p in checkpoints.glob(".last.ckpt.*.tmp") if p.stat().st_size > 0]
        proc.kill()
        assert proc.wait() == -signal.SIGKILL
        proc.stderr.close()
        if partial[0].exists():  # the kill landed during the write
            break
    else:
        pytest.fail("no kill landed during a write in 5 tries")
    assert partial[0].stat().st_size > 0
    checkpoint = torch.load(last, weights_only=True)  # the previous one, whole
    assert checkpoint["global_step"] > 0 and set(checkpoint["state_dict"]) == {
        "net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias", "net.3.weight", "net.3.bias"
    }  # fmt: skip
    # ... and training continues from it, in the same run.
    resumed = subprocess.run(script_command("train", *flags, "--max_epochs", str(checkpoint["epoch"] + 2),
                                            "--ckpt_path", "last"),
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert torch.load(last, weights_only=True)["global_step"] > checkpoint["global_step"]
    assert [p.name for p in (tmp_path / "lightning_logs").iterdir()] == ["version_0"]


class TermInEpoch21(L.Callback):
    """Sends this process SIGTERM halfway through epoch 21 (of 12 steps), as a scheduler would."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == 20 * 12 + 6:
            signal.raise_signal(signal.SIGTERM)


def test_sigterm_saves_last_checkpoint(train):
    # No time-based save for 1000 s: a checkpoint can only come from the SIGTERM handling.
    run = train(*CLASSIFIER, *SMALL, "--max_epochs", "100000", "--checkpoint_every_seconds", "1000",
                "--log_every_n_epochs", "10", "--patience", "null",
                "--trainer.callbacks+=runner.test_reliability.TermInEpoch21")  # fmt: skip
    assert run.status == 143, run.stderr
    assert "Interrupted (SIGTERM)" in run.stderr and run.results["stopped_because"] == "interrupted"
    assert torch.load(run.run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] >= 20 * 12 + 6


@pytest.mark.slow
def test_a_compiled_run_exits_when_done_and_its_weights_keep_their_names(tmp_path):
    """torch.compile with an empty cache leaves its worker pool running: the real script still ends, with
    its results written, in a process of its own (the cache is the user's first compiled run's: empty). The
    weights keep their names: the checkpoint loads into the plain model. Without a compiler, one line says so."""
    env = process_env(TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "inductor_cache"))
    # 1500 samples: every split (900, 300, 300) whole batches of 30, so that no smaller last batch compiles again.
    flags = ["--num_samples", "1500", "--batch_size", "30", "--max_epochs", "2", "--compile"]  # bare: --compile true
    try:
        done = subprocess.run(script_command("train", *CLASSIFIER, *flags), cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("the compiled run never exited")
    if done.returncode == 2:  # no compiler here: the one line says so
        assert done.stderr.startswith("error: --compile: torch.compile cannot work on this machine ("), done.stderr
        assert done.stderr.count("\n") == 1
        return
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "lightning_logs" / "version_0" / "results.json").read_text())
    assert results["epochs"] == 2 and results["model"] == "Classifier" and results["best_val_loss"] < 1.0
    Classifier().load_state_dict(torch.load(results["last_checkpoint"], weights_only=True)["state_dict"])


UNRESUMABLE = '''
from runner.lit_classifier import Blobs, Classifier


class Batches:
    """A train loader that is not a DataLoader and keeps no state: it cannot resume within an epoch."""

    def __init__(self, loader):
        self.loader = loader

    def __iter__(self):
        return iter(self.loader)

    def __len__(self):
        return len(self.loader)


class OwnBatches(Blobs):
    def train_dataloader(self):
        return Batches(super().train_dataloader())


class StepBug(Classifier):
    def __init__(self, fail_at_step: int = -1, **kwargs):
        super().__init__(**kwargs)
        self.fail_at_step = fail_at_step

    def training_step(self, batch, batch_idx):
        if self.global_step == self.fail_at_step:
            raise RuntimeError("the user's bug")
        return super().training_step(batch, batch_idx)
'''


def test_resuming_mid_epoch_with_a_loader_that_cannot_says_so_in_one_line(train, tmp_path):
    """A step's exception leaves last.ckpt within the epoch; continuing from it with a loader that keeps no
    state repeats the epoch's first batches, and one line says so (not Lightning's warning)."""
    (tmp_path / "unresumable_user.py").write_text(UNRESUMABLE)
    user = ["--model", "unresumable_user.StepBug", "--data", "unresumable_user.OwnBatches"]
    flags = [*user, *SMALL, "--max_epochs", "2"]
    failed = train(*flags, "--fail_at_step", "5")
    assert failed.status == 1 and "RuntimeError: the user's bug" in failed.stderr
    assert (failed.run_dir / "checkpoints" / "last.ckpt").is_file()
    resumed = train(*flags, "--ckpt_path", "last")
    assert resumed.status == 0, resumed.stderr
    said = [line for line in resumed.stderr.splitlines() if "cannot resume within an epoch" in line]
    assert len(said) == 1 and said[0].startswith("warning: the checkpoint was saved after batch 5 of epoch 1, "), said
    assert "the train loader (Batches) cannot resume within an epoch: the rest of this epoch repeats" in said[0]
    assert "You're resuming from a checkpoint that ended before the epoch ended" not in resumed.stderr
    assert resumed.results["epochs"] == 2
