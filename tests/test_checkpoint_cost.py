"""Checkpoints that cost training little at any size: written in the background from a copy in host memory,
the interval stretched to a budget (said once). (A kill during a write leaves the previous last.ckpt:
runner/test_reliability.py.) And a run limited by max_steps: its progress line, its verdict, results.json and
best.ckpt."""

import os
import re
import threading

import pytest
import torch
from runner.lit_classifier import CLASSIFIER

import linear_pl.runner.checkpoint_io
import linear_pl.runner.progress
import linear_pl.runner.run_checkpoints
from benchmarks.larger import kill_loss
from linear_pl.runner.checkpoint_io import AtomicCheckpointIO
from linear_pl.runner.progress import pace

SMALL = ["--num_samples", "600", "--batch_size", "30"]  # 360 to train on: 12 batches an epoch


def test_a_checkpoint_is_the_state_when_saved_though_training_changes_it_while_it_is_written(tmp_path):
    weights, step = torch.arange(6.0), torch.tensor(3)
    checkpoint = {"state_dict": {"w": weights}, "optimizer_states": [{"state": {0: {"step": step}}}], "epoch": 1}
    writer = AtomicCheckpointIO()
    writer.save_checkpoint(checkpoint, tmp_path / "last.ckpt")
    weights.mul_(-1)  # the next optimizer step, in place, while the write may be under way
    step.add_(1)
    writer.wait()
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert torch.equal(saved["state_dict"]["w"], torch.arange(6.0)) and saved["optimizer_states"][0]["state"][0][
        "step"
    ] == torch.tensor(3)
    assert saved["epoch"] == 1 and len(writer.writes) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left


def test_a_failed_background_write_is_raised_once_at_the_next_wait(tmp_path):
    writer = AtomicCheckpointIO()
    (tmp_path / "file").write_text("")
    writer.save_checkpoint({"x": torch.zeros(1)}, tmp_path / "file" / "last.ckpt")  # under a file: cannot be made
    with pytest.raises(OSError, match="Not a directory|File exists"):
        writer.wait()
    writer.wait()  # said once


def test_a_second_name_for_a_file_being_written_is_made_by_the_writer_without_a_wait(tmp_path, monkeypatch):
    # The fit's end names its final last.ckpt best.ckpt too: training must not wait for that write.
    may_finish = threading.Event()
    write = linear_pl.runner.checkpoint_io.write_atomically

    def held_write(path, checkpoint):
        assert may_finish.wait(10)
        write(path, checkpoint)

    monkeypatch.setattr(linear_pl.runner.checkpoint_io, "write_atomically", held_write)
    writer = AtomicCheckpointIO()
    writer.save_checkpoint({"x": torch.arange(3.0)}, tmp_path / "last.ckpt")
    writer.link(tmp_path / "last.ckpt", tmp_path / "best.ckpt")  # returns while the write is held
    assert writer.busy() and not (tmp_path / "best.ckpt").exists()
    may_finish.set()
    writer.wait()
    assert os.path.samefile(tmp_path / "last.ckpt", tmp_path / "best.ckpt")
    assert torch.equal(torch.load(tmp_path / "best.ckpt", weights_only=True)["x"], torch.arange(3.0))


def test_pace_is_seconds_per_step_below_one_step_a_second():
    assert pace(3, 12.0) == "4.0 s/step"
    assert pace(100, 2.0) == "50 steps/s"
    assert pace(1, 1.0) == "1 steps/s"


def test_kill_loss_is_the_training_since_the_newest_checkpoint_on_disk():
    # Fit from 0 to 10; a checkpoint of the state at 4 lands at 5.
    worst, mean = kill_loss(0.0, 10.0, [(4.0, 5.0)])
    assert worst == 6.0  # just before 10: 10 - 4
    assert mean == pytest.approx((5**2 / 2 + (6**2 - 1**2) / 2) / 10)
    assert kill_loss(0.0, 10.0, []) == (10.0, 5.0)  # nothing on disk: everything since the start


def test_a_checkpoint_costlier_than_the_budget_stretches_the_interval_says_so_once(train, monkeypatch):
    writes = []
    write = linear_pl.runner.checkpoint_io.write_atomically

    def counted(path, checkpoint):
        writes.append(path.name)
        write(path, checkpoint)

    monkeypatch.setattr(linear_pl.runner.checkpoint_io, "write_atomically", counted)
    monkeypatch.setattr(linear_pl.runner.run_checkpoints, "BUDGET", 1e-12)  # no checkpoint is ever cheap enough
    run = train(*CLASSIFIER, *SMALL, "--max_epochs", "4", "--checkpoint_every_seconds", "0.000001",
                "--log_every_n_epochs", "10", "--patience", "null")  # fmt: skip
    assert run.status == 0, run.stderr
    notes = [line for line in run.stderr.splitlines() if line.startswith("note: a checkpoint costs training about")]
    assert len(notes) == 1 and "instead of every 1e-06 s (--checkpoint_every_seconds)" in notes[0], run.stderr
    # Due after every epoch by the interval, but never within the budget: last.ckpt only at the end, and
    # best.ckpt (the one validation, after fit, at the same step) a second name for it.
    assert writes == ["last.ckpt"]
    checkpoints = run.run_dir / "checkpoints"
    assert os.path.samefile(checkpoints / "last.ckpt", checkpoints / "best.ckpt")
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["global_step"] == 4 * 12
    assert run.results["best_checkpoint"] == str(checkpoints / "best.ckpt")


def test_a_run_that_max_steps_stops_before_its_first_validation(train, monkeypatch):
    # 12 batches an epoch, 30 steps: stopped within epoch 3; validation every 10 epochs would never have come.
    monkeypatch.setattr(linear_pl.runner.progress, "LOG_SECONDS", 0.0)  # a step line after every step of epoch 1
    run = train(*CLASSIFIER, *SMALL, "--trainer.max_steps", "30", "--log_every_n_epochs", "10", "--patience", "null")
    assert run.status == 0, run.stderr
    assert "/-1" not in run.stdout
    step_lines = [line for line in run.stdout.splitlines() if line.startswith("Epoch 1  ")]
    assert len(step_lines) >= 10, run.stdout
    for line in step_lines:
        assert re.fullmatch(r"Epoch 1  batch (\d+)/12  step \1/30  loss \S+  (\d+ steps/s|\d+\.\d s/step)", line), line
    results = run.results
    assert results["stopped_because"] == "max_steps" and results["global_step"] == 30
    # Validated once, at the end: the last line, the verdict, results.json and best.ckpt have the value.
    value = results["best_value"]
    assert value is not None and value == results["final_val_loss"] == results["metrics"]["val/loss"]
    assert results["best_step"] == 30
    lines = run.stdout.strip().splitlines()
    assert re.fullmatch(r"Epoch \[3\]  step 30/30  train_loss \S+  val_loss " + f"{value:.4f}", lines[-3]), lines
    assert lines[-2] == f"After 30 steps (max_steps): best val/loss {value:.4g} (step 30)."
    best = torch.load(results["best_checkpoint"], weights_only=True)
    last = torch.load(results["last_checkpoint"], weights_only=True)
    assert best["global_step"] == last["global_step"] == 30
    assert all(torch.equal(best["state_dict"][k], v) for k, v in last["state_dict"].items())
