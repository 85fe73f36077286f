"""Any model: everything a run gives, for a LightningModule the run machinery did not write.

The model is the fixture classifier (tests/runner/lit_classifier.py): cross-entropy, AdamW, accuracy from
torchmetrics, plain Lightning code that knows nothing of the runner.
"""

import errno
import json
import signal

import lightning as L
import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import linear_pl.runner.checkpoint_io
from linear_pl.runner.cli import cli_main
from runner.commands import assert_clean
from runner.lit_classifier import CLASSIFIER, Blobs, Classifier, LogsTrainLoss, TwoPlayers

# Monitored on its accuracy, validated and reported every epoch; 1000 samples: 600 to train on.
WATCHED = [*CLASSIFIER, "--monitor", "val/acc", "--mode", "max", "--log_every_n_epochs", "1"]
SMALL = ["--num_samples", "1000", "--batch_size", "30"]  # 20 batches an epoch


class InterruptAfterEpoch(L.Callback):
    """Sends this process SIGINT at the end of an epoch, as Ctrl-C would (a --trainer.callbacks class path)."""

    def __init__(self, epoch: int = 3) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch + 1 == self.epoch:
            signal.raise_signal(signal.SIGINT)


def events(run_dir) -> EventAccumulator:
    accumulator = EventAccumulator(str(run_dir))
    accumulator.Reload()
    return accumulator


def state_of(path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def test_a_classifier_gets_everything_a_run_gives(train):
    run = train(*WATCHED, "--num_samples", "2000", "--max_epochs", "4")
    assert run.status == 0, run.stderr
    results, run_dir = run.results, run.run_dir
    # The monitored metric decides best.ckpt and the verdict; the test set is tested once, with best.ckpt.
    accuracies = [e.value for e in events(run_dir).Scalars("val/acc")]
    assert len(accuracies) == 4 and results["best_value"] == pytest.approx(max(accuracies))
    assert results["best_epoch"] == accuracies.index(max(accuracies)) + 1
    assert (results["monitor"], results["mode"], results["model"]) == ("val/acc", "max", "Classifier")
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
    init_args = {"num_classes": 3, "hidden_size": 32, "dropout": 0.1, "lr": 0.01}
    assert config["model"] == {"class_path": "runner.lit_classifier.Classifier", "init_args": init_args}
    assert config["data"]["init_args"]["batch_size"] == 32  # its own default
    assert "_hparams_/session_start_info" in events(run_dir).summary_metadata
    # Nothing the model does not log: no weights, no table, no least squares.
    assert "Initial weights" not in run.stdout and "least" not in run.stdout and "learned_weights" not in results


def test_a_class_that_is_not_a_lightning_module_is_one_line(train, tmp_path):
    run = train("--model", "torch.nn.Linear")
    assert run.status == 2 and run.stderr == "error: --model torch.nn.Linear: not a LightningModule\n"
    run = train(*CLASSIFIER, "--data", "runner.lit_classifier.Classifier")
    assert (
        run.status == 2 and run.stderr == "error: --data runner.lit_classifier.Classifier: not a LightningDataModule\n"
    )
    # A module written for pytorch_lightning (its classes are not lightning's): the fix, in the same line.
    (tmp_path / "old_style.py").write_text(
        "class LightningModule:\n    __module__ = 'pytorch_lightning.core.module'\n\n\n"
        "class Old(LightningModule):\n    pass\n"
    )
    run = train("--model", "old_style.Old")
    assert run.status == 2 and run.stderr == (
        "error: --model old_style.Old: a pytorch_lightning LightningModule; import it from lightning instead "
        "(import lightning as L; L.LightningModule)\n"
    )


def test_sigint_ends_the_epoch_saves_and_says_how_to_continue(train):
    run = train(*WATCHED, *SMALL, "--max_epochs", "10",
                "--trainer.callbacks+=runner.test_run.InterruptAfterEpoch")  # fmt: skip
    assert run.status == 130
    assert run.results["stopped_because"] == "interrupted" and run.results["epochs"] == 3
    assert "Interrupted (SIGINT) after epoch 3" in run.stderr and "--ckpt_path last" in run.stderr
    assert "test" not in run.results  # an interrupted run is not tested


class ExplodesInEpochThree(Classifier):
    """A user's model whose loss turns NaN in its third epoch (a bad batch, an overflow)."""

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        return loss * float("nan") if self.current_epoch == 2 else loss


def test_a_non_finite_loss_stops_with_exit_1_naming_the_kept_checkpoints(train):
    run = train(*CLASSIFIER, "--model", "runner.test_run.ExplodesInEpochThree", *SMALL, "--max_epochs", "10",
                "--checkpoint_every_seconds", "0", "--log_every_n_epochs", "1")  # fmt: skip
    assert run.status == 1
    line = run.stderr.strip().splitlines()[-1]
    checkpoints = run.run_dir / "checkpoints"
    assert line.startswith("error: training diverged at epoch 3: train_loss nan with lr 0.01; try a smaller")
    assert line.endswith(f"last good checkpoint kept: {checkpoints / 'last.ckpt'}; best checkpoint kept: "
                         f"{checkpoints / 'best.ckpt'}")  # fmt: skip
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["epoch"] == 1  # the end of epoch 2
    assert run.results["diverged"] is True and run.results["epochs"] == 2


def test_a_monitor_the_model_never_logs_is_one_line_naming_what_it_logged(train):
    # After a validation inside fit (epoch 1), and after the final one (a run shorter than the interval).
    for interval, epoch in (("1", 1), ("10", 3)):
        run = train(*CLASSIFIER, *SMALL, "--monitor", "val/f1", "--max_epochs", "3", "--log_every_n_epochs", interval)
        assert run.status == 2, run.stderr
        assert "Traceback" not in run.stderr
        (line,) = [line for line in run.stderr.splitlines() if line.startswith("error:")]
        assert f"--monitor val/f1: Classifier logged no val/f1 by epoch {epoch}" in line and "val/acc, val/loss" in line
        assert "last good checkpoint kept" in line


def test_predict_any_model_over_its_data_modules_predict_dataloader(train, capsys):
    trained = train(*WATCHED, "--num_samples", "2000", "--max_epochs", "3")
    status = cli_main(["predict", "--ckpt_path", "best", "--default_root_dir", str(trained.root), "--data",
                       "runner.lit_classifier.Blobs", "--num_samples", "2000"])  # fmt: skip
    out = capsys.readouterr().out.split()
    data = Blobs(num_samples=2000)
    data.setup()
    labels = data.test_set.tensors[1].tolist()
    assert status == 0 and len(out) == len(labels) and all(v.isdigit() for v in out)
    assert sum(int(p) == y for p, y in zip(out, labels)) / len(labels) > 0.9


def test_predict_names_a_class_that_cannot_be_imported(train, capsys, tmp_path):
    trained = train(*WATCHED, *SMALL, "--max_epochs", "1")
    checkpoint = torch.load(trained.run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["hyper_parameters"]["_class_path"] = "nowhere.Model"
    moved = tmp_path / "moved.ckpt"
    torch.save(checkpoint, moved)
    status = cli_main(["predict", "--ckpt_path", str(moved), "--data", "runner.lit_classifier.Blobs"])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith(f"error: --ckpt_path {moved}: its model class nowhere.Model: cannot import")


@pytest.mark.parametrize(
    "flags",
    [["--precision", "bf16-mixed"], ["--trainer.accumulate_grad_batches", "2"], ["--trainer.gradient_clip_val", "0.5"]],
)
def test_larger_model_habits(train, flags):
    run = train(*WATCHED, *SMALL, "--max_epochs", "2", *flags)
    assert run.status == 0, run.stderr
    config = yaml.safe_load((run.run_dir / "config.yaml").read_text())["trainer"]
    key, value = flags[0].removeprefix("--").removeprefix("trainer."), flags[1]
    assert str(config[key]) == value
    # 20 batches an epoch; accumulating 2 batches makes one optimizer step of them.
    assert run.results["global_step"] == (10 if "accumulate" in key else 20) * 2
    assert run.results["test"]["test/acc"] > 0.5


def test_a_full_disk_is_one_line_naming_the_intact_last_checkpoint(train, monkeypatch):
    write = linear_pl.runner.checkpoint_io.write_atomically
    calls = []

    def fill_up_after_two(path, checkpoint):
        calls.append(path)
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        write(path, checkpoint)

    monkeypatch.setattr(linear_pl.runner.checkpoint_io, "write_atomically", fill_up_after_two)
    run = train(*CLASSIFIER, *SMALL, "--max_epochs", "10", "--checkpoint_every_seconds", "0", "--patience", "null")
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
        # Accepted when the Trainer is built; each divides once training starts.
        (["--trainer.accumulate_grad_batches", "0"], "--trainer.accumulate_grad_batches 0: must be >= 1"),
        (["--trainer.val_check_interval", "0"], "--trainer.val_check_interval 0: must be > 0"),
    ],
)
def test_what_lightning_or_jsonargparse_rejects_is_one_line_and_exit_2(train, flags, message):
    run = train(*CLASSIFIER, *flags)
    assert run.status == 2
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("error: ") and message in run.stderr, run.stderr
    assert not (run.root / "lightning_logs").exists()


def test_results_json_is_strict_json_for_any_model(train):
    run = train(*CLASSIFIER, *SMALL, "--max_epochs", "2")
    json.loads((run.run_dir / "results.json").read_text(), parse_constant=lambda c: pytest.fail(c))


def test_model_flags_work_for_a_users_model_as_for_the_shipped_ones(train):
    run = train(*WATCHED, *SMALL, "--lr", "0.005", "--max_epochs", "1")
    assert run.status == 0, run.stderr
    assert run.results["lr"] == 0.005
    assert yaml.safe_load((run.run_dir / "config.yaml").read_text())["model"]["init_args"]["lr"] == 0.005


GAN = [
    "--model",
    "runner.lit_classifier.TwoPlayers",
    "--data",
    "runner.lit_classifier.Blobs",
    *SMALL,
    "--log_every_n_epochs",
    "1",
]


def epoch_values(stdout: str, name: str) -> list[float]:
    """The value of ``name`` on each progress line."""
    return [float(line.split(f"  {name} ")[1].split()[0]) for line in stdout.splitlines() if f"  {name} " in line]


class TwoPlayersValidated(TwoPlayers):
    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", torch.nn.functional.cross_entropy(self(x), y))


@pytest.mark.parametrize(
    ("model", "flags", "why"),
    [
        # The GAN's shape: its data serves validation, but it has no validation_step: Lightning never validates.
        ("runner.lit_classifier.TwoPlayers", [], "no validation_step in TwoPlayers"),
        (
            "runner.test_run.TwoPlayersValidated",
            ["--trainer.limit_val_batches", "0"],
            "--trainer.limit_val_batches 0",
        ),
    ],
)
def test_without_validation_best_follows_the_named_training_metric(train, model, flags, why):
    run = train(*GAN, "--model", model, "--max_epochs", "4", "--monitor", "g_loss", *flags)
    assert run.status == 0, run.stderr
    assert_clean(run)
    results, printed = run.results, epoch_values(run.stdout, "g_loss")
    assert results["monitor"] == "g_loss" and len(printed) == 4
    assert results["best_epoch"] == printed.index(min(printed)) + 1
    checkpoints = run.run_dir / "checkpoints"
    best = torch.load(checkpoints / "best.ckpt", weights_only=True)
    if results["best_epoch"] == 4:  # no step followed it: best.ckpt is a second name of the final last.ckpt
        assert (checkpoints / "best.ckpt").samefile(checkpoints / "last.ckpt") and best["epoch"] == 4
    else:
        assert best["epoch"] == results["best_epoch"] - 1  # saved during that epoch (0-based)
    state = next(v for k, v in best["callbacks"].items() if "RunCheckpoints" in k)
    assert float(state["best_score"]) == results["best_value"]
    assert f"note: {why}: best.ckpt and early stopping watch g_loss\n" in run.stderr


def test_without_validation_or_a_training_loss_the_default_monitor_is_one_line(train):
    run = train(*GAN, "--max_epochs", "2")
    assert run.status == 2 and "Traceback" not in run.stderr
    (line,) = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith("error: --monitor: without validation the run watches the training loss, and TwoPlayers")
    assert "(it logged: d_loss, g_loss); give --monitor one of those" in line


class ExplodesLoggingTrainLoss(ExplodesInEpochThree, LogsTrainLoss):
    """ExplodesInEpochThree's NaN, on a model that logs its loss as train_loss."""


def test_a_training_loss_logged_as_train_loss_is_shown_kept_and_watched(train):
    run = train(*CLASSIFIER, "--model", "runner.lit_classifier.LogsTrainLoss", *SMALL, "--max_epochs", "2",
                "--log_every_n_epochs", "1")  # fmt: skip
    assert run.status == 0, run.stderr
    assert "note: the training loss is train_loss, as the model logs it" in run.stderr
    assert len(epoch_values(run.stdout, "train_loss")) == 2
    assert run.results["final_train_loss"] == run.results["metrics"]["train_loss"]
    assert run.results["train_loss_metric"] == "train_loss"
    diverged = train(*CLASSIFIER, "--model", "runner.test_run.ExplodesLoggingTrainLoss", *SMALL,
                     "--max_epochs", "5", "--log_every_n_epochs", "1")  # fmt: skip
    assert diverged.status == 1 and diverged.results["diverged"] is True and diverged.results["epochs"] == 2
    assert "error: training diverged at epoch 3: train_loss nan" in diverged.stderr


RETURNED: list[float] = []


class ReturnsItsLossOnly(Classifier):
    """Logs no training loss; returns it, as every automatic-optimization training_step does."""

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self(x), y)
        RETURNED.append((self.current_epoch, loss.item()))
        return loss


def test_a_training_loss_only_returned_is_the_epochs_mean(train):
    RETURNED.clear()
    run = train(*CLASSIFIER, "--model", "runner.test_run.ReturnsItsLossOnly", *SMALL, "--max_epochs", "2",
                "--log_every_n_epochs", "1", "--trainer.limit_val_batches", "0")  # fmt: skip
    assert run.status == 0, run.stderr
    assert "note: the training loss is train/loss, the mean loss training_step returns" in run.stderr
    assert "note: --trainer.limit_val_batches 0: best.ckpt and early stopping watch train/loss" in run.stderr
    last_epoch = [loss for epoch, loss in RETURNED if epoch == 1]
    assert len(last_epoch) == 20  # SMALL: 20 batches an epoch
    assert run.results["final_train_loss"] == pytest.approx(sum(last_epoch) / 20, rel=1e-5)
    assert run.results["monitor"] == "train/loss" and run.results["best_value"] is not None
    assert len(epoch_values(run.stdout, "train_loss")) == 2
