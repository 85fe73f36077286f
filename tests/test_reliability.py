"""Runs that survive: bad input, resume, unusable or unsafe checkpoints, divergence, kills."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import ROOT


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--lr", "0"], "--lr 0.0: must be a finite number > 0"),
        (["--lr=-1e-3"], "--lr -0.001: must be a finite number > 0"),
        (["--lr", "abc"], 'Parser key "model.lr"'),
        (["--max_epochs", "0"], "--max_epochs 0: must be >= 1"),
        (["--batch_size", "0"], "--batch_size 0: must be an integer >= 1"),
        (["--batch_size", "1.5"], "Parser key \"data.batch_size\": Expected a <class 'int'>"),
        (["--num_samples", "0"], "--num_samples 0: must be an integer >= 1"),
        (["--num_samples", "3"], "fewer samples than the 7 weights: the weights would not be identifiable"),
        (["--true_weights", "[]"], "--true_weights []: must be a non-empty list of numbers"),
        (["--true_weights", "[a, b]"], 'Parser key "data.true_weights"'),
        (["--low", "5", "--high", "2"], "--low 5: must be <= high (2)"),
        (["--noise_std", "-1"], "--noise_std -1.0: must be >= 0"),
        (["--preset", "nope"], "--preset 'nope': unknown preset"),
        (["--accelerator", "abacus"], "--accelerator abacus: unknown; choose one of auto, cpu, gpu"),
        (["--config", "/no/such.yaml"], "File does not exist"),
        (["--ckpt_path", "last"], "--ckpt_path last: no earlier run with a checkpoint"),
        (["--ckpt_path", "/no/such.ckpt"], "--ckpt_path /no/such.ckpt: no such file"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(train, flags, message):
    run = train(*flags)
    assert run.status == 2
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("error: "), run.stderr
    assert message in run.stderr
    assert run.stdout == ""
    assert not (run.root / "lightning_logs").exists()


def test_invalid_yaml_config(train, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [1,\n")
    run = train("--config", str(bad))
    assert run.status == 2 and run.stderr.count("\n") == 1 and "Problems parsing config" in run.stderr


def test_earlier_runs_are_never_overwritten(train):
    first = train("--max_epochs", "2").results
    train("--max_epochs", "3")
    assert train("--lr", "0").status == 2
    runs = sorted(p.name for p in (train("--max_epochs", "1").root / "lightning_logs").iterdir())
    assert runs == ["version_0", "version_1", "version_2"]
    assert first["epochs"] == 2


def test_resume_last_continues_the_same_run_bit_identically_with_shuffle(train, tmp_path):
    flags = ["--shuffle", "--seed", "3", "--checkpoint_every_seconds", "0", "--precondition", "none"]
    straight = train(*flags, "--max_epochs", "30", "--default_root_dir", str(tmp_path / "straight")).results

    root = ["--default_root_dir", str(tmp_path / "resumed")]
    train(*flags, "--max_epochs", "12", *root)
    run = train(*flags, "--max_epochs", "30", "--ckpt_path", "last", *root)
    assert run.status == 0
    assert [p.name for p in (tmp_path / "resumed" / "lightning_logs").iterdir()] == ["version_0"]
    resumed = run.results  # results.json rewritten at the end
    assert resumed["epochs"] == 30 and resumed["global_step"] == 300
    assert resumed["learned_weights"] == straight["learned_weights"]
    assert resumed["initial_weights"] == straight["initial_weights"]

    events = EventAccumulator(str(run.run_dir))
    events.Reload()
    steps = [event.step for event in events.Scalars("train/loss")]
    assert steps == [100, 120, 200, 300]  # every 10 epochs and at the end: the curve continues


def test_resume_from_a_given_path(train):
    train("--max_epochs", "5")
    ckpt = train("--max_epochs", "1").root / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    run = train("--max_epochs", "8", "--ckpt_path", str(ckpt))
    assert run.status == 0
    assert sorted(p.name for p in (run.root / "lightning_logs").iterdir()) == ["version_0", "version_1"]
    assert json.loads((ckpt.parent.parent / "results.json").read_text())["epochs"] == 8


def _one_line_refusal(run, *fragments):
    assert run.status == 2, run.stderr
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    for fragment in fragments:
        assert fragment in run.stderr


def test_unusable_checkpoints_are_refused(train, tmp_path):
    good = train("--max_epochs", "1").run_dir / "checkpoints" / "last.ckpt"
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[:300])
    text = tmp_path / "text.ckpt"
    text.write_text("not a checkpoint\n")
    for path in (truncated, text):
        _one_line_refusal(train("--ckpt_path", str(path)), f"--ckpt_path {path}: not a usable checkpoint")
    # A checkpoint of another model's shape (4 weights, not 7).
    _one_line_refusal(train("--ckpt_path", str(good), "--true_weights", "[1, 2, 3, 4]"), "holds parameters")


class RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_whose_pickle_runs_code_is_refused_and_the_code_never_runs(train, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": RunsACommand(marker)}, evil)
    run = train("--ckpt_path", str(evil))
    _one_line_refusal(run, f"--ckpt_path {evil}: not a usable checkpoint", "Weights only load failed")
    assert not marker.exists()


def test_divergence_stops_with_a_clear_line_exit_1_and_results_say_so(train):
    # Tutorial 2's lr with a correct single-output model: above the stable limit (~1.66e-4).
    run = train("--preset", "lntx", "--lr", "5e-4", "--max_epochs", "50")
    assert run.status == 1
    warning, error = [line for line in run.stderr.splitlines() if line.startswith(("warning:", "error:"))]
    assert warning.startswith("warning: --lr 0.0005 is above the stable limit 0.000166")
    assert error.startswith("error: training diverged at epoch ")
    assert "stable limit for this data is 0.000166, try --lr 8.28e-05" in error
    results = run.results
    assert results["diverged"] is True and results["converged"] is False
    assert "Recovered" not in run.stdout and "Not recovered" not in run.stdout  # no table for a NaN run


def test_divergence_keeps_the_best_checkpoint_saved_before_it(train):
    # Validated after epoch 1, diverged in epoch 2: best.ckpt was held in memory (validations came
    # faster than --checkpoint_every_seconds) and is written when training fails.
    run = train("--preset", "lntx", "--lr", "5e-4", "--max_epochs", "50", "--log_every_n_epochs", "1")
    assert run.status == 1 and run.results["best_epoch"] == 1
    best = run.run_dir / "checkpoints" / "best.ckpt"
    assert run.stderr.splitlines()[-1].endswith(f"; best checkpoint kept: {best}")
    assert torch.load(best, weights_only=True)["epoch"] == 0  # saved during epoch 1 (0-based 0)


def test_a_stable_lr_gives_no_warning(train):
    run = train("--max_epochs", "2")
    assert "warning:" not in run.stderr and run.results["diverged"] is False


@pytest.mark.slow
def test_sigkill_at_any_moment_leaves_a_loadable_checkpoint(tmp_path):
    # $TMPDIR on another filesystem is what broke Lightning's own save; last.ckpt is saved after
    # every epoch here so that kills land during writes.
    env = {**os.environ, "TMPDIR": "/dev/shm" if os.path.isdir("/dev/shm") else str(tmp_path)}
    command = [sys.executable, str(ROOT / "scripts" / "train.py"), "--max_epochs", "100000",
               "--checkpoint_every_seconds", "0", "--log_every_n_epochs", "1000", "--lr", "1e-6"]  # fmt: skip
    last = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    rng = random.Random(0)
    steps = []
    for _ in range(6):
        resume = ["--ckpt_path", "last"] if last.exists() else []
        proc = subprocess.Popen(command + resume, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
        before = last.stat().st_mtime_ns if last.exists() else None
        deadline = time.monotonic() + 300  # only a bound: the event is this cycle's first save
        while not (last.exists() and last.stat().st_mtime_ns != before):
            assert time.monotonic() < deadline and proc.poll() is None, "this cycle saved no checkpoint"
            time.sleep(0.05)
        time.sleep(rng.uniform(0.2, 2.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        checkpoint = torch.load(last, weights_only=True)
        steps.append(checkpoint["global_step"])
    assert steps == sorted(steps) and steps[-1] > steps[0]
    assert [p.name for p in (tmp_path / "lightning_logs").iterdir()] == ["version_0"]


def test_sigterm_saves_last_checkpoint(tmp_path):
    # No time-based save for 1000 s: a checkpoint can only come from the SIGTERM handling.
    command = [sys.executable, str(ROOT / "scripts" / "train.py"), "--max_epochs", "100000",
               "--checkpoint_every_seconds", "1000", "--lr", "1e-6"]  # fmt: skip
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        if line.startswith("Epoch [20/"):
            break
    last = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    assert not last.exists()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert torch.load(last, weights_only=True)["global_step"] >= 200
