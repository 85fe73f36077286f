"""Training control from the training loss: stop once converged; fail clearly once diverged."""

import math
import sys

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from linear_pl.closed_form import SAFETY_FACTOR
from linear_pl.data_protocol import true_weights_of, y_mean_square_of
from linear_pl.internals import PerEpochCallback


class TrainingDiverged(RuntimeError):
    """The loss became non-finite or grew far beyond where it started."""

    def __init__(self, epoch: int, loss: float, lr: float, limit: float) -> None:
        self.epoch, self.loss, self.lr, self.limit = epoch, loss, lr, limit
        advice = (
            f"the stable limit for this data is {limit:.3g}, try --lr {SAFETY_FACTOR * limit:.3g} (or --lr auto)"
            if math.isfinite(limit)
            else "try a smaller --lr"
        )
        super().__init__(f"training diverged at epoch {epoch}: train_loss {loss:.4g} with lr {lr:.3g}; {advice}")


class TrainingLossWatch(PerEpochCallback):
    """After each epoch the training loss decides: diverged (raise), converged (stop), or go on.

    The tutorials' "hardest hyperparameter", made safe: before training, one warning line if the lr
    is above the data's stability limit; after each epoch, :class:`TrainingDiverged` if the loss is
    not finite or has grown ``growth`` times beyond the first epoch's. Raising (rather than
    stopping) lets the checkpoints keep the last good one and the command exit with status 1.

    Converged, a tutorial extra, only when the data knows its true weights: the loss is below
    ``rtol * mean(y^2)``. At rtol 1e-10 the residual is 1e-5 of y's RMS: on tutorial 1's data (10
    seeds) the weights were then within 0.004 of the truth, and float32 rounding alone leaves a
    relative loss near 1e-14. Real data never fits exactly; it stops on a validation plateau.

    One callback for both, as both read the same value at the same moment: Lightning calls every
    hook of every callback at every step, a cost per callback even where the hook does nothing.
    """

    def __init__(self, rtol: float = 1e-10, growth: float = 1e6) -> None:
        self.rtol, self.growth = rtol, growth
        self.threshold: float | None = None
        self.first_loss: float | None = None
        self.converged_epoch: int | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        datamodule = trainer.datamodule
        if stage == "fit" and true_weights_of(datamodule) is not None:
            self.threshold = self.rtol * y_mean_square_of(datamodule)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if pl_module.lr > pl_module.stable_lr and trainer.is_global_zero:
            print(
                f"warning: --lr {pl_module.lr:.3g} is above the stable limit {pl_module.stable_lr:.3g} for this "
                f"data and batch size; SGD may diverge. Suggested: --lr {SAFETY_FACTOR * pl_module.stable_lr:.3g}",
                file=sys.stderr,
                flush=True,
            )

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loss = trainer.callback_metrics["train/loss"].item()  # synced: the same on every rank
        if self.first_loss is None:
            self.first_loss = loss
        if not math.isfinite(loss) or loss > self.growth * self.first_loss:
            raise TrainingDiverged(trainer.current_epoch + 1, loss, pl_module.lr, pl_module.stable_lr)
        if self.threshold is not None and loss < self.threshold:
            self.converged_epoch = trainer.current_epoch + 1
            trainer.should_stop = True

    def state_dict(self) -> dict:
        return {"first_loss": self.first_loss}

    def load_state_dict(self, state_dict: dict) -> None:
        self.first_loss = state_dict["first_loss"]


def early_stopping_on_val_loss(theirs: list, patience: int | None, min_delta: float) -> EarlyStopping | None:
    """Lightning's EarlyStopping on val/loss: the user's if they gave one (two would clash), else --patience's."""
    for callback in theirs:
        if isinstance(callback, EarlyStopping) and callback.monitor == "val/loss":
            print(
                f"warning: your EarlyStopping on val/loss replaces linear_pl's (--patience {patience})", file=sys.stderr
            )
            return callback
    if patience is None:
        return None
    return ValPlateauStop("val/loss", min_delta=min_delta, patience=patience, check_finite=False)


class ValPlateauStop(PerEpochCallback, EarlyStopping):
    """Lightning's EarlyStopping, without per-batch hooks (it has none to run)."""


def warn_about_clashes(theirs: list) -> None:
    """One line for each of the user's callbacks that does a job one of ours does too."""
    for callback in theirs:
        name = type(callback).__name__
        if isinstance(callback, ModelCheckpoint):
            print(f"warning: your {name} saves beside linear_pl's last.ckpt and best.ckpt", file=sys.stderr)
        elif isinstance(callback, EarlyStopping) and callback.monitor == "train/loss":
            print(f"warning: your {name} on train/loss runs beside linear_pl's convergence stop", file=sys.stderr)
