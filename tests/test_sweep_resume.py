"""A worker killed mid-trial (SIGKILL: the OOM killer, a preempted node): its trial is found by its silent
heartbeat, run again from its own last.ckpt by a live worker or by the same command run again, and counted
once; the study ends with --n_trials finished trials and none RUNNING."""

import csv
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from optuna.trial import TrialState
from runner.commands import script_command
from runner.test_sweep import load_study, rows
from test_sweep import SPACE, trial_numbers

# Trials of a few seconds, last.ckpt at every epoch, no pruner (every trial runs to its end); a heartbeat
# every second, so that a trial silent for 3 s is taken as dead.
EPOCHS = 60  # a kill comes at the 20th
LONG = ["--preset", "mlp-sine", "--max_epochs", str(EPOCHS), "--num_samples", "200", "--num_val_samples", "50",
        "--log_every_n_epochs", "10", "--checkpoint_every_seconds", "0", "--pruner", "none",
        "--heartbeat", "1"]  # fmt: skip
N_TRIALS = 3


def start(tmp_path: Path, study: str) -> subprocess.Popen:
    """A worker of ``study``: the sweep command in tmp_path."""
    command = script_command("sweep", "--space", "space.yaml", "--study", study, "--n_trials", str(N_TRIALS), *LONG)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        time.sleep(0.1)


def kill_in_trial(worker: subprocess.Popen, trial_dir: Path) -> int:
    """SIGKILL the worker once its trial in ``trial_dir`` has printed its 20th epoch;
    the epochs its last.ckpt holds (written at each epoch's end, just after the line: 19 if the kill fell between)."""
    log = trial_dir / "train.log"
    wait_for(lambda: "Epoch [20/" in (log.read_text() if log.exists() else "") or worker.poll() is not None, f"{log}")
    assert worker.poll() is None, worker.communicate()
    worker.kill()
    worker.wait(timeout=60)
    assert worker.returncode == -signal.SIGKILL and (trial_dir / "checkpoints" / "last.ckpt").is_file()
    return torch.load(trial_dir / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] + 1  # "epoch" counts from 0


def assert_resumed(tmp_path: Path, name: str, dead: int, saved_epochs: int) -> int:
    """Study ``name`` holds N_TRIALS counted trials, none running; ``dead`` is FAIL and continued, from its
    last.ckpt (``saved_epochs`` trained), by exactly one trial, which ran to its end. That trial's number."""
    study_dir = tmp_path / "sweeps" / name
    study = load_study(study_dir, name)
    assert not [t.number for t in study.trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    (retry,) = [t for t in study.trials if t.system_attrs.get("retry_history") == [dead]]
    assert study.trials[dead].state == TrialState.FAIL and retry.state == TrialState.COMPLETE
    counted = [t.number for t in study.trials if not t.user_attrs.get("surplus") and t.number != dead]
    assert len(counted) == N_TRIALS and all(study.trials[n].state == TrialState.COMPLETE for n in counted)
    assert retry.params == study.trials[dead].params and retry.user_attrs["resumed_from"] == dead
    log = (study_dir / f"trial_{retry.number}" / "train.log").read_text()
    assert log.splitlines()[0].endswith(f" --ckpt_path sweeps/{name}/trial_{dead}/checkpoints/last.ckpt")
    assert "Restored all states from the checkpoint" in log
    # It trained only the epochs the dead trial had not: its first progress line (every 10 epochs) is the first
    # after the checkpoint's epochs, at least the 20th (from the start it would be the 10th).
    first = next(line for line in log.splitlines() if line.startswith("Epoch ["))
    assert saved_epochs >= 19 and int(first.removeprefix("Epoch [").split("/")[0]) == (saved_epochs // 10 + 1) * 10, (
        saved_epochs,
        first,
    )
    table = {int(r["number"]): r for r in rows(study_dir)}
    assert sorted(table) == sorted([*counted, dead])
    died = ("FAIL", f"its worker died; resumed as trial {retry.number}")
    assert (table[dead]["state"], table[dead]["reason"]) == died
    assert table[retry.number]["resumed_from"] == str(dead) and table[retry.number]["epochs"] == str(EPOCHS)
    assert [r["resumed_from"] for n, r in table.items() if n != retry.number] == [""] * N_TRIALS
    with open(study_dir / "trials.csv", newline="") as file:
        assert "resumed_from" in next(csv.reader(file))
    return retry.number


@pytest.mark.slow
def test_a_live_worker_or_the_same_command_again_resumes_the_trial_of_a_worker_killed_mid_trial(tmp_path, sweep):
    (tmp_path / "space.yaml").write_text(SPACE)
    # Study "live": a worker killed in its trial 0 while another, started separately (as on another machine), runs.
    victim = start(tmp_path, "live")
    trial_0 = tmp_path / "sweeps" / "live" / "trial_0"
    wait_for(lambda: (trial_0 / "train.log").is_file(), "the first worker's trial 0")
    survivor = start(tmp_path, "live")
    saved_epochs = kill_in_trial(victim, trial_0)
    killed_at = time.time()
    # Study "again", meanwhile: its only worker killed in its trial 1.
    worker = start(tmp_path, "again")
    again_saved_epochs = kill_in_trial(worker, tmp_path / "sweeps" / "again" / "trial_1")

    out, err = survivor.communicate(timeout=600)
    assert survivor.returncode == 0, err
    assert "Traceback" not in err and "Warning" not in err
    retry = assert_resumed(tmp_path, "live", dead=0, saved_epochs=saved_epochs)
    assert retry in trial_numbers(out) and "resumed from trial 0's last.ckpt" in out
    assert f"({N_TRIALS} complete, 0 pruned, 0 failed, 1 whose worker died, resumed):" in out
    # Noticed within a few heartbeats (3 s of silence here), not at the end of the study.
    started = load_study(tmp_path / "sweeps" / "live", "live").trials[retry].datetime_start.timestamp()
    assert started - killed_at < 60

    # The same command again, in this process (what a process prints: the survivor's, above).
    again = sweep("--study", "again", "--n_trials", str(N_TRIALS), *LONG)
    out, err = again.stdout, again.stderr
    assert again.status == 0, err
    assert "Traceback" not in err and "Warning" not in err
    retry = assert_resumed(tmp_path, "again", dead=1, saved_epochs=again_saved_epochs)
    # Trial 1 counted, running or dead.
    assert out.startswith(f"Study 'again': {N_TRIALS} trials of val/loss (min), 2 done;")
    assert f"Trial {retry:>3}  " in out and "resumed from trial 1's last.ckpt" in out
