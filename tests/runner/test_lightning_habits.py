"""What Lightning users type from habit, on any model: their callbacks and loggers, debug flags, subcommands."""

import csv
import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from runner.lit_classifier import CLASSIFIER

# Five epochs of 12 batches, validated and reported every epoch.
RUN = [*CLASSIFIER, "--num_samples", "600", "--batch_size", "30", "--max_epochs", "5", "--log_every_n_epochs", "1"]


def scalars(run_dir) -> set[str]:
    events = EventAccumulator(str(run_dir))
    events.Reload()
    return set(events.Tags()["scalars"])


def test_a_callback_added_with_plus_equals_runs_beside_ours(train):
    run = train("--trainer.callbacks+=lightning.pytorch.callbacks.LearningRateMonitor", *RUN)
    assert run.status == 0, run.stderr
    assert "lr-AdamW" in scalars(run.run_dir)  # LearningRateMonitor's own log
    assert {"train/loss", "val/loss", "val/acc"} <= scalars(run.run_dir)  # and the run's
    assert (run.run_dir / "checkpoints" / "last.ckpt").is_file() and "Traceback" not in run.stderr


def test_a_callback_that_does_our_job_is_said_in_one_line(train):
    run = train("--trainer.callbacks+=lightning.pytorch.callbacks.EarlyStopping", "--trainer.callbacks.monitor",
                "val/loss", *RUN)  # fmt: skip
    assert run.status == 0, run.stderr
    assert "warning: your EarlyStopping on val/loss replaces linear_pl's (--patience 10)" in run.stderr
    assert run.results["stopped_because"] in ("val_plateau", "max_epochs")


@pytest.mark.parametrize(
    "flags",
    [
        ["--trainer.fast_dev_run", "true"],
        ["--trainer.overfit_batches", "2"],
        ["--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "1"],
        ["--trainer.max_time", "00:00:00:01", "--max_epochs", "100000", "--patience", "null"],
    ],
)
def test_debug_flags_end_with_exit_0(train, flags):
    run = train(*RUN, *flags)
    assert run.status == 0, run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    if "--trainer.fast_dev_run" in flags:
        assert "fast_dev_run: no run directory written" in run.stdout
        assert not (run.root / "lightning_logs").exists()
    elif "--trainer.max_time" in flags:
        assert run.results["stopped_because"] == "max_time"
    else:
        assert run.results["epochs"] >= 1


def test_a_csv_logger_gets_the_losses_and_the_run_its_files(train, tmp_path):
    run = train("--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir",
                str(tmp_path / "csv"), *RUN)  # fmt: skip
    assert run.status == 0, run.stderr
    run_dir = tmp_path / "csv" / "lightning_logs" / "version_0"
    rows = list(csv.DictReader((run_dir / "metrics.csv").read_text().splitlines()))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    results = json.loads((run_dir / "results.json").read_text())
    assert losses and losses[-1] == pytest.approx(results["final_train_loss"], rel=1e-6)
    assert any(r.get("hp/final_train_loss") for r in rows)  # the final metrics, as this logger takes them
    assert (run_dir / "hparams.yaml").is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file()


def test_a_list_of_loggers_each_get_the_report(train, tmp_path):
    loggers = (
        f"[{{class_path: lightning.pytorch.loggers.TensorBoardLogger, init_args: {{save_dir: {tmp_path}/tb}}}},"
        f" {{class_path: lightning.pytorch.loggers.CSVLogger, init_args: {{save_dir: {tmp_path}/csv}}}}]"
    )
    run = train("--trainer.logger", loggers, *RUN)
    assert run.status == 0, run.stderr
    assert {"train/loss", "val/acc"} <= scalars(tmp_path / "tb" / "lightning_logs" / "version_0")
    header = (tmp_path / "csv" / "lightning_logs" / "version_0" / "metrics.csv").read_text().splitlines()[0]
    assert "val/acc" in header and "train/loss" in header


def test_fit_subcommand_as_lightning_cli_users_type_it(train):
    run = train("fit", *RUN)
    assert run.status == 0, run.stderr
    assert run.results["epochs"] == 5 and "Epoch [5/5]" in run.stdout


def test_validate_reports_a_checkpoints_validation_loss_without_training(train):
    trained = train(*RUN)
    best = trained.results["best_val_loss"]
    run = train("validate", "--ckpt_path", "best", *RUN)
    assert run.status == 0, run.stderr
    (line,) = [line for line in run.stdout.splitlines() if "val_loss" in line]
    assert float(line.split("val_loss ")[1].split()[0]) == pytest.approx(best, rel=1e-5)
    assert sorted(p.name for p in (run.root / "lightning_logs").iterdir()) == ["version_0"]  # nothing new
