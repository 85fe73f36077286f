"""Training control for any model: fail clearly once the training loss diverges; stop on a plateau."""

import math
import sys

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from linear_pl.runner.extras import extras_of
from linear_pl.runner.internals import early_stopping_checks_on_train_epochs
from linear_pl.runner.monitor import Monitor


class TrainingDiverged(RuntimeError):
    """The training loss became non-finite or grew far beyond where it started."""

    def __init__(self, epoch: int, loss: float, lr: float | None, advice: str) -> None:
        self.epoch, self.loss = epoch, loss
        with_lr = "" if lr is None else f" with lr {lr:.3g}"
        super().__init__(f"training diverged at epoch {epoch}: train_loss {loss:.4g}{with_lr}; {advice}")


def first_lr(trainer: L.Trainer) -> float | None:
    """The learning rate of the first optimizer's first parameter group, if there is an optimizer."""
    return trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None


class LossWatch(L.Callback):
    """After each epoch: :class:`TrainingDiverged` if the training loss is not finite, or has grown
    ``growth`` times beyond the first epoch's. Raising (rather than stopping) lets the checkpoints
    keep the last good one and the command exit with status 1. Reads the training loss the monitor's
    :class:`~linear_pl.runner.monitor.TrainingLoss` found; a model with none is not watched.
    """

    def __init__(self, monitor: Monitor | None = None, growth: float = 1e6) -> None:
        self.monitor, self.growth = monitor or Monitor(), growth
        self.first_loss: float | None = None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        name = self.monitor.train_loss
        if name is None or name not in trainer.callback_metrics:
            return
        loss = float(trainer.callback_metrics[name])  # synced: the same on every rank
        if self.first_loss is None:
            self.first_loss = loss
        if not math.isfinite(loss) or self.first_loss > 0 and loss > self.growth * self.first_loss:
            advice = [a for extra in extras_of(trainer) if (a := extra.divergence_advice(trainer, pl_module))]
            lr = first_lr(trainer)
            advice = advice[0] if advice else "try a smaller learning rate"
            raise TrainingDiverged(trainer.current_epoch + 1, loss, lr, advice)

    def state_dict(self) -> dict:
        return {"first_loss": self.first_loss}

    def load_state_dict(self, state_dict: dict) -> None:
        self.first_loss = state_dict["first_loss"]


class PlateauStop(EarlyStopping):
    """Lightning's EarlyStopping on the run's monitor: after each validation, or, without validation
    data, on the training loss at the epochs validation would have run."""

    def __init__(self, monitor: Monitor, patience: int, min_delta: float) -> None:
        # strict=False: a metric the model never logs is reported by RunCheckpoints in one line, not
        # by Lightning's RuntimeError here (this callback runs first).
        super().__init__(
            monitor.name, min_delta=min_delta, patience=patience, mode=monitor.mode, check_finite=False, strict=False
        )
        self.watched = monitor

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":
            self.watched.choose(trainer)
            self.monitor, self.mode = self.watched.name, self.watched.mode
            early_stopping_checks_on_train_epochs(self, self.watched.on_training)
        super().setup(trainer, pl_module, stage)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.watched.due(trainer):
            self.monitor = self.watched.name  # the training loss's name is known after the first epoch
            super().on_train_epoch_end(trainer, pl_module)


def early_stopping(theirs: list, monitor: Monitor, patience: int | None, min_delta: float) -> EarlyStopping | None:
    """EarlyStopping on the monitor: the user's if they gave one on it (two would clash), else --patience's."""
    for callback in theirs:
        if isinstance(callback, EarlyStopping) and callback.monitor == monitor.name:
            print(
                f"warning: your EarlyStopping on {monitor.name} replaces linear_pl's (--patience {patience})",
                file=sys.stderr,
            )
            return callback
    if patience is None:
        return None
    return PlateauStop(monitor, patience, min_delta)


def warn_about_clashes(theirs: list) -> None:
    """One line for each of the user's callbacks that does a job one of ours does too."""
    for callback in theirs:
        if isinstance(callback, ModelCheckpoint):
            print(
                f"warning: your {type(callback).__name__} saves beside linear_pl's last.ckpt and best.ckpt",
                file=sys.stderr,
            )
