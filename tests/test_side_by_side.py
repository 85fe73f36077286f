"""Runs side by side, interrupted, or sent to a bad place lose nothing."""

import json
import os
import shlex
import signal
import subprocess
import sys
import time

import lightning as L
import pytest
import torch
import yaml
from runner.commands import ROOT, run_quietly

from linear_pl.runner.cli import cli_main
from linear_pl.runner.run_dir import RUN_DIR_ENV, choose_run_dir

TRAIN = [sys.executable, str(ROOT / "scripts" / "train.py")]


@pytest.mark.slow
def test_four_runs_started_at_once_each_get_their_own_directory(tmp_path):
    procs = {
        seed: subprocess.Popen([*TRAIN, "--seed", str(seed), "--max_epochs", "30", "--precondition", "none",
                                "--default_root_dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for seed in range(1, 5)
    }  # fmt: skip
    for proc in procs.values():
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
    run_dirs = sorted((tmp_path / "lightning_logs").iterdir())
    assert len(run_dirs) == 4
    seen_seeds, writers = set(), set()
    for run_dir in run_dirs:
        seed = yaml.safe_load((run_dir / "config.yaml").read_text())["seed_everything"]
        results = json.loads((run_dir / "results.json").read_text())
        assert results["seed"] == seed and results["epochs"] == 30  # config and results of one run
        # An event file is named events.out.tfevents.<time>.<host>.<pid>.<n>: each run's by one process.
        pids = {p.name.split(".")[-2] for p in run_dir.glob("events.out.tfevents.*")}
        assert len(pids) == 1, pids
        seen_seeds.add(seed)
        writers |= pids
    assert seen_seeds == set(range(1, 5)) and len(writers) == 4  # nothing overwritten, nothing shared


def start_and_interrupt(tmp_path, signum, flags):
    proc = subprocess.Popen([*TRAIN, *flags], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoint = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300  # only a bound: the event is the first epoch's checkpoint
    while not checkpoint.exists():  # training is under way, its signal handlers installed
        assert time.monotonic() < deadline and proc.poll() is None, "no checkpoint: training never got under way"
        time.sleep(0.05)
    time.sleep(0.1)  # not for the outcome: a signal in mid-epoch rather than at the first epoch's end
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err, checkpoint


# The signal comes 0.1 s after the first epoch's checkpoint: a few epochs in, far from the last.
EPOCHS = 200
INTERRUPTED = ["--max_epochs", str(EPOCHS), "--precondition", "none", "--shuffle", "--seed", "3",
               "--checkpoint_every_seconds", "0"]  # fmt: skip


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> dict:
    """results.json of the run the interrupted ones must end as: the same flags, never interrupted (one
    run for both signals)."""
    root = tmp_path_factory.mktemp("straight")
    done = run_quietly(cli_main, *INTERRUPTED, "--default_root_dir", str(root), root=root)
    assert done.status == 0, done.stderr
    return done.results


def assert_interrupted_and_resume(status, err, signum, checkpoint, straight, monkeypatch) -> None:
    """The interrupted run's exit status, its one line, its results and checkpoint; the command that line prints,
    run (in this process), ends as the run never interrupted, bit-identically."""
    assert status == 128 + signum, err
    lines = [line for line in err.splitlines() if line.startswith("Interrupted")]
    assert len(lines) == 1 and "Traceback" not in err and "KeyboardInterrupt" not in err, err
    results = json.loads((checkpoint.parent.parent / "results.json").read_text())
    assert results["stopped_because"] == "interrupted" and 0 < results["epochs"] < EPOCHS
    assert f"Interrupted ({signal.Signals(signum).name}) after epoch {results['epochs']}:" in lines[0]
    assert torch.load(checkpoint, weights_only=True)["epoch"] == results["epochs"]  # saved at the end of fit

    command = shlex.split(lines[0].split("continue with: ", 1)[1])
    # As the run was started: the script's path as it was given.
    assert command[:2] == ["python", str(ROOT / "scripts" / "train.py")] and command[-2:] == ["--ckpt_path", "last"]
    monkeypatch.chdir(ROOT)
    resumed = run_quietly(cli_main, *command[2:], root=checkpoint.parents[3])
    assert resumed.status == 0, resumed.stderr
    final = json.loads((checkpoint.parent.parent / "results.json").read_text())
    assert final["epochs"] == straight["epochs"] == EPOCHS
    assert final["learned_weights"] == straight["learned_weights"]  # bit-identical


@pytest.mark.slow
def test_ctrl_c_from_outside_saves_says_how_to_continue_and_resumes_bit_identically(tmp_path, straight, monkeypatch):
    flags = [*INTERRUPTED, "--default_root_dir", str(tmp_path)]
    status, _, err, checkpoint = start_and_interrupt(tmp_path, signal.SIGINT, flags)
    assert_interrupted_and_resume(status, err, signal.SIGINT, checkpoint, straight, monkeypatch)


class TermAtEpoch50(L.Callback):
    """Sends this process SIGTERM at the end of epoch 50, as a scheduler would."""

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == 49:
            signal.raise_signal(signal.SIGTERM)


def test_sigterm_saves_says_how_to_continue_and_resumes_bit_identically(train, tmp_path, straight, monkeypatch):
    # The same handling as Ctrl-C's, in this process (a signal from outside: the test above).
    monkeypatch.setattr(sys, "argv", [str(ROOT / "scripts" / "train.py")])  # as a user started it
    run = train(*INTERRUPTED, "--trainer.callbacks+=test_side_by_side.TermAtEpoch50")
    checkpoint = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    assert_interrupted_and_resume(run.status, run.stderr, signal.SIGTERM, checkpoint, straight, monkeypatch)


def test_a_run_directory_under_a_file_fails_before_training(train, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    run = train("--default_root_dir", str(blocker / "runs"))
    assert run.status == 2 and run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert run.stderr.startswith(f"error: {blocker / 'runs' / 'lightning_logs'}: cannot create the run directory (")
    assert run.stdout == ""


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through file permissions")
def test_a_run_directory_without_permission_fails_before_training(train, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    run = train("--default_root_dir", str(locked))
    assert run.status == 2 and "cannot create the run directory (Permission denied)" in run.stderr


def test_who_chooses_the_run_directory(tmp_path, monkeypatch):
    for name in ("LOCAL_RANK", "RANK", "SLURM_NTASKS", RUN_DIR_ENV):
        monkeypatch.delenv(name, raising=False)
    claimed = choose_run_dir(tmp_path, None)  # the launching process claims, and tells its DDP ranks
    assert claimed == tmp_path / "lightning_logs" / "version_0" and os.environ[RUN_DIR_ENV] == str(claimed)
    monkeypatch.setenv("LOCAL_RANK", "1")  # a rank Lightning relaunched from it: the same directory
    assert choose_run_dir(tmp_path, None) == claimed
    monkeypatch.delenv(RUN_DIR_ENV)
    monkeypatch.setenv("RANK", "1")  # started by torchrun: Lightning's logger chooses, rank 0's choice shared
    assert choose_run_dir(tmp_path, None) is None
    assert choose_run_dir(tmp_path, 7) == tmp_path / "lightning_logs" / "version_7"  # resuming: the run's own
    assert sorted(p.name for p in (tmp_path / "lightning_logs").iterdir()) == ["version_0"]
