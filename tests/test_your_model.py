"""Your model: the example's data and schedules beside a user's regressor (everything a run gives for any
LightningModule: tests/runner/test_run.py, on the fixture classifier).

``examples/digits.py`` is a CNN classifier on scikit-learn's digits (cross-entropy, AdamW, accuracy
from torchmetrics) and ``examples/my_regressor.py`` a regressor written from scratch with Adam: plain
Lightning code, nothing of linear_pl in them.
"""

import pytest
import torch
import yaml
from runner.commands import ROOT
from runner.test_run import events

from linear_pl.runner.cli import cli_main

REGRESSOR = ["--model", "examples.my_regressor.MyRegressor", "--data", "examples.diabetes_data.DiabetesData"]


@pytest.fixture(autouse=True)
def from_the_repository(monkeypatch):
    """Class paths like examples.digits.DigitsCNN are imported from the current directory, as a user runs them."""
    monkeypatch.chdir(ROOT)


def test_a_regressor_with_adam_beside_the_shipped_one(train):
    run = train(*REGRESSOR, "--max_epochs", "20")
    assert run.status == 0, run.stderr
    results = run.results
    assert results["model"] == "MyRegressor" and results["monitor"] == "val/loss"
    # Its own constructor default lr (0.1), and Adam from its own configure_optimizers.
    assert results["lr"] == 0.1 and results["best_val_loss"] == results["best_value"] < 3500
    assert "warning" not in run.stderr  # no stable-lr warning: that is the regression example's extra


def test_without_validation_data_the_training_loss_is_watched_and_stops_the_run(train):
    run = train("--data", "csv", "--data.path", str(ROOT / "examples" / "diabetes.csv"),
                "--data.target_column", "target", "--data.val_fraction", "0", "--bias", "--patience", "3")  # fmt: skip
    assert run.status == 0, run.stderr
    assert run.stderr.count("note: no validation data: best.ckpt and early stopping watch train/loss") == 1
    results = run.results
    assert results["monitor"] == "train/loss" and results["stopped_because"] == "train_plateau"
    assert results["epochs"] < 3000 and results["best_checkpoint"] is not None


def test_lightning_cli_optimizer_and_scheduler_flags(train):
    run = train("--model", "mlp", "--optimizer", "torch.optim.AdamW", "--optimizer.lr", "0.01",
                "--lr_scheduler", "torch.optim.lr_scheduler.StepLR", "--lr_scheduler.step_size", "2",
                "--target", "sine", "--num_samples", "200", "--batch_size", "20", "--max_epochs", "4")  # fmt: skip
    assert run.status == 0, run.stderr
    config = yaml.safe_load((run.run_dir / "config.yaml").read_text())
    assert config["optimizer"]["class_path"] == "torch.optim.AdamW" and config["optimizer"]["init_args"]["lr"] == 0.01
    assert config["lr_scheduler"]["class_path"] == "torch.optim.lr_scheduler.StepLR"
    assert run.results["lr"] == 0.01
    lrs = [e.value for e in events(run.run_dir).Scalars("train/lr")]
    assert lrs[-1] == pytest.approx(0.01 * 0.1**2)  # stepped twice in four epochs
    # The regression model's short schedule names keep working under the same flag.
    short = train("--lr_scheduler", "step", "--step_size", "1", "--max_epochs", "3", "--precondition", "none")
    assert (
        short.status == 0
        and yaml.safe_load((short.run_dir / "config.yaml").read_text())["model"]["init_args"]["lr_scheduler"] == "step"
    )
    alone = train("--lr_scheduler", "torch.optim.lr_scheduler.StepLR", "--lr_scheduler.step_size", "2")
    assert alone.status == 2 and "--lr_scheduler CLASS: give --optimizer CLASS too" in alone.stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        # The other cases, on any model: tests/runner/test_run.py.
        (["--data", "csv"], "--data.path"),
    ],
)
def test_what_lightning_or_jsonargparse_rejects_is_one_line_and_exit_2(train, flags, message):
    run = train(*flags)
    assert run.status == 2
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("error: ") and message in run.stderr, run.stderr
    assert not (run.root / "lightning_logs").exists()


def test_configs_and_checkpoints_written_before_the_split_still_load(train, capsys, tmp_path):
    # Before linear_pl/runner and linear_pl/regression, the classes lived in linear_pl.model and linear_pl.data.
    config = tmp_path / "old.yaml"
    config.write_text(
        "model:\n  class_path: linear_pl.model.LinearModel\n  init_args: {bias: true}\n"
        "data:\n  class_path: linear_pl.data.SyntheticDataModule\n  init_args: {true_weights: [2, 3], true_bias: 1}\n"
    )
    run = train("--config", str(config), "--max_epochs", "5")
    assert run.status == 0, run.stderr
    checkpoint = torch.load(run.run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["hyper_parameters"]["_class_path"] = "linear_pl.model.LinearModel"
    old = tmp_path / "old.ckpt"
    torch.save(checkpoint, old)
    assert cli_main(["predict", "--ckpt_path", str(old), "--x", "[1, 1]"]) == 0
    assert float(capsys.readouterr().out) == pytest.approx(6.0, abs=0.01)  # 2 + 3 + 1
