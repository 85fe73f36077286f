"""Your model: everything a run gives, for LightningModules linear_pl did not write.

``examples/digits.py`` is a CNN classifier on scikit-learn's digits (cross-entropy, AdamW, accuracy
from torchmetrics) and ``examples/my_regressor.py`` a regressor written from scratch with Adam: plain
Lightning code, nothing of linear_pl in them.
"""

import errno
import json

import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import linear_pl.runner.checkpointing
from conftest import ROOT
from examples.digits import Digits
from examples.my_regressor import MyRegressor
from linear_pl.runner.cli import cli_main

DIGITS = ["--model", "examples.digits.DigitsCNN", "--data", "examples.digits.Digits", "--monitor", "val/acc",
          "--mode", "max", "--log_every_n_epochs", "1"]  # fmt: skip
REGRESSOR = ["--model", "examples.my_regressor.MyRegressor", "--data", "examples.diabetes_data.DiabetesData"]


@pytest.fixture(autouse=True)
def from_the_repository(monkeypatch):
    """Class paths like examples.digits.DigitsCNN are imported from the current directory, as a user runs them."""
    monkeypatch.chdir(ROOT)


def events(run_dir) -> EventAccumulator:
    accumulator = EventAccumulator(str(run_dir))
    accumulator.Reload()
    return accumulator


def state_of(path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def test_a_classifier_gets_everything_a_run_gives(train):
    run = train(*DIGITS, "--max_epochs", "4")
    assert run.status == 0, run.stderr
    results, run_dir = run.results, run.run_dir
    # The monitored metric decides best.ckpt and the verdict; the test set is tested once, with best.ckpt.
    accuracies = [e.value for e in events(run_dir).Scalars("val/acc")]
    assert len(accuracies) == 4 and results["best_value"] == pytest.approx(max(accuracies))
    assert results["best_epoch"] == accuracies.index(max(accuracies)) + 1
    assert (results["monitor"], results["mode"], results["model"]) == ("val/acc", "max", "DigitsCNN")
    assert set(results["metrics"]) == {"train/loss", "val/loss", "val/acc"}
    assert results["test"]["test/acc"] > 0.9 and set(results["test"]) == {"test/acc", "test/loss"}
    assert results["best_checkpoint"] == str(run_dir / "checkpoints" / "best.ckpt")
    best = torch.load(results["best_checkpoint"], weights_only=True)
    assert best["epoch"] == results["best_epoch"] - 1  # saved during that epoch (0-based)
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    # What the run prints: the monitored metric beside the losses, a verdict on it, the test line.
    assert "Epoch [4/4]  train_loss " in run.stdout and "  val_acc " in run.stdout
    assert f"After 4 epochs (max_epochs): best val/acc {results['best_value']:.4g}" in run.stdout
    assert "Test (best.ckpt): test_acc " in run.stdout
    # The model's own hyperparameters, in config.yaml and in TensorBoard's hparams.
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["model"] == {"class_path": "examples.digits.DigitsCNN",
                               "init_args": {"channels": 16, "lr": 0.01, "weight_decay": 0.01}}  # fmt: skip
    assert config["data"]["init_args"]["batch_size"] == 64  # its own default, not the synthetic data's 1
    assert "_hparams_/session_start_info" in events(run_dir).summary_metadata
    # Nothing of the regression example: no weights, no table, no least squares.
    assert "Initial weights" not in run.stdout and "least" not in run.stdout and "learned_weights" not in results


def test_a_class_that_is_not_a_lightning_module_is_one_line(train):
    run = train("--model", "torch.nn.Linear")
    assert run.status == 2 and run.stderr == "error: --model torch.nn.Linear: not a LightningModule\n"


def test_a_regressor_with_adam_beside_the_shipped_one(train):
    run = train(*REGRESSOR, "--max_epochs", "20")
    assert run.status == 0, run.stderr
    results = run.results
    assert results["model"] == "MyRegressor" and results["monitor"] == "val/loss"
    # Its own constructor default lr (0.1), and Adam from its own configure_optimizers.
    assert results["lr"] == 0.1 and results["best_val_loss"] == results["best_value"] < 3500
    assert "warning" not in run.stderr  # no stable-lr warning: that is the regression example's extra


def test_resume_is_bit_identical_with_a_shuffling_dataloader(train, tmp_path):
    # DataLoader(shuffle=True) draws each epoch's order from the global RNG, which Lightning's
    # checkpoints do not hold; last.ckpt holds it here.
    flags = [*DIGITS, "--checkpoint_every_seconds", "0"]
    straight = train(*flags, "--max_epochs", "4", "--default_root_dir", str(tmp_path / "straight"))
    root = ["--default_root_dir", str(tmp_path / "resumed")]
    assert train(*flags, "--max_epochs", "2", *root).status == 0
    resumed = train(*flags, "--max_epochs", "4", "--ckpt_path", "last", *root)
    assert straight.status == resumed.status == 0, resumed.stderr
    a, b = (state_of(run.run_dir / "checkpoints" / "last.ckpt") for run in (straight, resumed))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_sigint_ends_the_epoch_saves_and_says_how_to_continue(train):
    run = train(*DIGITS, "--max_epochs", "10", "--trainer.callbacks+=test_truth.InterruptAfterEpoch")
    assert run.status == 130
    assert run.results["stopped_because"] == "interrupted" and run.results["epochs"] == 3
    assert "Interrupted (SIGINT) after epoch 3" in run.stderr and "--ckpt_path last" in run.stderr
    assert "test" not in run.results  # an interrupted run is not tested


class ExplodesInEpochThree(MyRegressor):
    """A user's model whose loss turns NaN in its third epoch (a bad batch, an overflow)."""

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        return loss * float("nan") if self.current_epoch == 2 else loss


def test_a_non_finite_loss_stops_with_exit_1_naming_the_kept_checkpoints(train):
    run = train("--model", "test_your_model.ExplodesInEpochThree", *REGRESSOR[2:], "--max_epochs", "10",
                "--checkpoint_every_seconds", "0", "--log_every_n_epochs", "1")  # fmt: skip
    assert run.status == 1
    line = run.stderr.strip().splitlines()[-1]
    checkpoints = run.run_dir / "checkpoints"
    assert line.startswith("error: training diverged at epoch 3: train_loss nan with lr 0.1; try a smaller")
    assert line.endswith(f"last good checkpoint kept: {checkpoints / 'last.ckpt'}; best checkpoint kept: "
                         f"{checkpoints / 'best.ckpt'}")  # fmt: skip
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["epoch"] == 1  # the end of epoch 2
    assert run.results["diverged"] is True and run.results["epochs"] == 2


def test_validate_and_test_a_checkpoint(train):
    trained = train(*DIGITS, "--max_epochs", "2")
    validated = train("validate", "--ckpt_path", "best", *DIGITS)
    tested = train("test", "--ckpt_path", "best", *DIGITS)
    assert validated.status == tested.status == 0, tested.stderr
    acc = float(validated.stdout.split("val/acc ")[1].split()[0]) if "val/acc " in validated.stdout else None
    acc = acc or float(validated.stdout.split("val_acc ")[1].split()[0])
    assert acc == pytest.approx(trained.results["best_value"], abs=1e-6)
    assert float(tested.stdout.split("test_acc ")[1].split()[0]) == pytest.approx(
        trained.results["test"]["test/acc"], abs=1e-6
    )
    assert sorted(p.name for p in (trained.root / "lightning_logs").iterdir()) == ["version_0"]  # nothing new


def test_a_monitor_the_model_never_logs_is_one_line_naming_what_it_logged(train):
    # After a validation inside fit (epoch 1), and after the final one (a run shorter than the interval).
    for interval, epoch in (("1", 1), ("10", 3)):
        run = train(*DIGITS[:4], "--monitor", "val/f1", "--max_epochs", "3", "--log_every_n_epochs", interval)
        assert run.status == 2, run.stderr
        assert "Traceback" not in run.stderr
        (line,) = [line for line in run.stderr.splitlines() if line.startswith("error:")]
        assert f"--monitor val/f1: DigitsCNN logged no val/f1 by epoch {epoch}" in line and "val/acc, val/loss" in line
        assert "last good checkpoint kept" in line


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


def test_predict_any_model_over_its_data_modules_predict_dataloader(train, capsys):
    trained = train(*DIGITS, "--max_epochs", "3")
    status = cli_main(["predict", "--ckpt_path", "best", "--default_root_dir", str(trained.root), "--data",
                           "examples.digits.Digits"])  # fmt: skip
    out = capsys.readouterr().out.split()
    data = Digits()
    data.setup()
    labels = data.test_set.tensors[1].tolist()
    assert status == 0 and len(out) == len(labels) and all(v.isdigit() for v in out)
    assert sum(int(p) == y for p, y in zip(out, labels)) / len(labels) > 0.9


def test_predict_names_a_class_that_cannot_be_imported(train, capsys, tmp_path):
    trained = train(*DIGITS, "--max_epochs", "1")
    checkpoint = torch.load(trained.run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["hyper_parameters"]["_class_path"] = "nowhere.Model"
    moved = tmp_path / "moved.ckpt"
    torch.save(checkpoint, moved)
    status = cli_main(["predict", "--ckpt_path", str(moved), "--data", "examples.digits.Digits"])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith(f"error: --ckpt_path {moved}: its model class nowhere.Model: cannot import")


@pytest.mark.parametrize(
    "flags",
    [["--precision", "bf16-mixed"], ["--trainer.accumulate_grad_batches", "2"], ["--trainer.gradient_clip_val", "0.5"]],
)
def test_larger_model_habits(train, flags):
    run = train(*DIGITS, "--max_epochs", "2", *flags)
    assert run.status == 0, run.stderr
    config = yaml.safe_load((run.run_dir / "config.yaml").read_text())["trainer"]
    key, value = flags[0].removeprefix("--").removeprefix("trainer."), flags[1]
    assert str(config[key]) == value
    # 20 batches an epoch; accumulating 2 batches makes one optimizer step of them.
    assert run.results["global_step"] == (10 if "accumulate" in key else 20) * 2
    assert run.results["test"]["test/acc"] > 0.5


def test_compile_wraps_the_model_or_says_why_not_in_one_line(train):
    run = train(*REGRESSOR, "--max_epochs", "2", "--compile", "true")
    if run.status == 2:  # no compiler here: the one line says so
        assert run.stderr.startswith("error: --compile: torch.compile cannot work on this machine (")
        assert run.stderr.count("\n") == 1
    else:
        assert run.status == 0, run.stderr
        assert run.results["model"] == "MyRegressor" and run.results["best_val_loss"] < 10_000
        # The weights keep their names: the checkpoint loads into the plain model.
        MyRegressor().load_state_dict(state_of(run.run_dir / "checkpoints" / "last.ckpt"))


def test_a_full_disk_is_one_line_naming_the_intact_last_checkpoint(train, monkeypatch):
    write = linear_pl.runner.checkpointing.write_atomically
    calls = []

    def fill_up_after_two(path, checkpoint):
        calls.append(path)
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        write(path, checkpoint)

    monkeypatch.setattr(linear_pl.runner.checkpointing, "write_atomically", fill_up_after_two)
    run = train(*DIGITS[:4], "--max_epochs", "10", "--checkpoint_every_seconds", "0", "--patience", "null")
    assert run.status == 1
    (line,) = run.stderr.strip().splitlines()[-1:]
    last = run.run_dir / "checkpoints" / "last.ckpt"
    assert line.startswith("error: writing the run's files failed: [Errno 28] No space left on device")
    assert f"last good checkpoint kept: {last}" in line
    assert torch.load(last, weights_only=True)["epoch"] >= 0  # intact: the temporary file never replaced it
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--devices", "0"], "--devices 0"),
        (["--accelerator", "tpu"], "--accelerator tpu: not available on this machine (available: cpu)"),
        (["--log_every_n_epochs", "0"], "--log_every_n_epochs 0: must be >= 1"),
        (["--seed", "abc"], "--seed abc"),
        (["--data", "csv"], "--data.path"),
    ],
)
def test_what_lightning_or_jsonargparse_rejects_is_one_line_and_exit_2(train, flags, message):
    run = train(*flags)
    assert run.status == 2
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("error: ") and message in run.stderr, run.stderr
    assert not (run.root / "lightning_logs").exists()


def test_results_json_is_strict_json_for_any_model(train):
    run = train(*REGRESSOR, "--max_epochs", "2")
    json.loads((run.run_dir / "results.json").read_text(), parse_constant=lambda c: pytest.fail(c))


def test_model_flags_work_for_a_users_model_as_for_the_shipped_ones(train):
    run = train(*DIGITS, "--lr", "0.005", "--max_epochs", "1")
    assert run.status == 0, run.stderr
    assert run.results["lr"] == 0.005
    assert yaml.safe_load((run.run_dir / "config.yaml").read_text())["model"]["init_args"]["lr"] == 0.005


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
