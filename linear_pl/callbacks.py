"""Training control: stop once converged; fail clearly once diverged."""

import math
import sys

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping

from linear_pl.closed_form import SAFETY_FACTOR
from linear_pl.data_protocol import moments_of, true_weights_of


class StopWhenConverged(EarlyStopping):
    """EarlyStopping on ``train/loss`` with a threshold taken from the data: ``rtol * mean(y^2)``.

    A tutorial extra: on only when the data knows its true weights (noise-free synthetic data can be
    fitted exactly; real data never reaches such a loss, and stops on a validation plateau instead).

    At rtol 1e-10 the residual is 1e-5 of y's RMS: on tutorial 1's data (10 seeds) the weights were
    then within 0.004 of the truth, and float32 rounding alone leaves a relative loss near 1e-14.
    """

    def __init__(self, rtol: float = 1e-10) -> None:
        # Never stop for lack of improvement (patience), only on reaching the threshold; a
        # non-finite loss is the divergence check's business, not this callback's.
        super().__init__(
            monitor="train/loss",
            mode="min",
            stopping_threshold=0.0,
            patience=sys.maxsize,
            check_finite=False,
            check_on_train_epoch_end=True,
        )
        self.rtol = rtol

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        datamodule = trainer.datamodule
        known = true_weights_of(datamodule) is not None
        self.stopping_threshold = self.rtol * moments_of(datamodule, full=False).y_mean_square if known else None

    def converged(self, trainer: L.Trainer) -> bool:
        """Whether the last epoch's training loss is below the threshold."""
        loss = trainer.callback_metrics.get(self.monitor)
        return self.stopping_threshold is not None and loss is not None and loss.item() < self.stopping_threshold


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


class LearningRateGuard(L.Callback):
    """The tutorials' "hardest hyperparameter", made safe.

    Before training: one warning line if the lr is above the stability limit of the data. After each
    epoch: raise :class:`TrainingDiverged` if the loss is not finite or has grown ``growth`` times
    beyond the first epoch's. Raising (rather than stopping) lets the checkpoint callback keep the
    last good checkpoint and the command exit with status 1.
    """

    def __init__(self, growth: float = 1e6) -> None:
        self.growth = growth
        self.first_loss: float | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if pl_module.lr > pl_module.stable_lr and trainer.is_global_zero:
            print(
                f"warning: --lr {pl_module.lr:.3g} is above the stable limit {pl_module.stable_lr:.3g} for this "
                f"data and batch size; SGD may diverge. Suggested: --lr {SAFETY_FACTOR * pl_module.stable_lr:.3g}",
                file=sys.stderr,
                flush=True,
            )

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loss = trainer.callback_metrics["train/loss"].item()
        if self.first_loss is None:
            self.first_loss = loss
        if not math.isfinite(loss) or loss > self.growth * self.first_loss:
            raise TrainingDiverged(trainer.current_epoch + 1, loss, pl_module.lr, pl_module.stable_lr)

    def state_dict(self) -> dict:
        return {"first_loss": self.first_loss}

    def load_state_dict(self, state_dict: dict) -> None:
        self.first_loss = state_dict["first_loss"]
