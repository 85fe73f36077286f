"""The regression example's training extras: the learning-rate guard, the convergence stop, divergence advice.

Brought by ``RegressionModel.configure_callbacks()``; the run machinery knows only that they are
:class:`~linear_pl.runner.extras.RunExtra` callbacks.
"""

import math
import sys

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping

from linear_pl.regression.closed_form import SAFETY_FACTOR
from linear_pl.regression.data_protocol import true_weights_of, y_mean_square_of
from linear_pl.runner.extras import RunExtra
from linear_pl.runner.monitor import TRAIN_LOSS


class ConvergenceStop(RunExtra):
    """The tutorials' "hardest hyperparameter", made safe, and a stop once the weights are found.

    Before training, one warning line if plain SGD's lr is above the data's stability limit; when the
    loss diverges, the stable limit and a learning rate to try. Converged, a tutorial extra, only
    when the data knows its true weights: the epoch's training loss is below ``rtol * mean(y^2)``.
    At rtol 1e-10 the residual is 1e-5 of y's RMS: on tutorial 1's data (10 seeds) the weights were
    then within 0.004 of the truth, and float32 rounding alone leaves a relative loss near 1e-14.
    Real data never fits exactly; it stops on a validation plateau.
    """

    def __init__(self, rtol: float = 1e-10) -> None:
        self.rtol = rtol
        self.threshold: float | None = None
        self.converged_epoch: int | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        datamodule = trainer.datamodule
        if stage == "fit" and true_weights_of(datamodule) is not None:
            self.threshold = self.rtol * y_mean_square_of(datamodule)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        optimizer = trainer.optimizers[0] if trainer.optimizers else None
        if not isinstance(optimizer, torch.optim.SGD) or not trainer.is_global_zero:
            return  # the stability limit is plain SGD's
        lr, limit = optimizer.param_groups[0]["lr"], pl_module.stable_lr
        if lr > limit:
            print(
                f"warning: --lr {lr:.3g} is above the stable limit {limit:.3g} for this data and batch size; "
                f"SGD may diverge. Suggested: --lr {SAFETY_FACTOR * limit:.3g}",
                file=sys.stderr,
                flush=True,
            )

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.threshold is not None and float(trainer.callback_metrics[TRAIN_LOSS]) < self.threshold:
            self.converged_epoch = trainer.current_epoch + 1
            trainer.should_stop = True

    def stop_reason(self) -> str | None:
        return None if self.converged_epoch is None else "converged"

    def divergence_advice(self, trainer: L.Trainer, pl_module: L.LightningModule) -> str | None:
        limit = pl_module.stable_lr
        if not math.isfinite(limit):
            return None
        return f"the stable limit for this data is {limit:.3g}, try --lr {SAFETY_FACTOR * limit:.3g} (or --lr auto)"


class LowerRateOnPlateau(RunExtra):
    """Without validation data, a plateau of the training loss first lowers the rate; only a later one stops.

    The run stops once the training loss has not improved for ``--patience`` checks (Lightning's
    EarlyStopping on ``train/loss``). Halfway there, while ``drops`` remain, this multiplies every
    learning rate by ``factor`` and that EarlyStopping counts its patience anew. A loss at SGD's noise
    floor is a reason to lower the rate, not yet to stop: on NIST's Longley table (16 rows) at batch
    4 the run stopped 4.5% off the certified coefficients without the drops, 0.5% with them; at
    batch 1, 186% and 0.7%. (At full batch there is no sampling noise and the drops change little.)
    Not when the model has a learning-rate schedule (``--lr_scheduler``): that keeps its own rates.
    """

    def __init__(self, factor: float = 0.1, drops: int = 2) -> None:
        self.factor, self.drops = factor, drops
        self.dropped = 0

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning calls this before any EarlyStopping's own check of the epoch.
        if self.dropped >= self.drops or trainer.lr_scheduler_configs:
            return
        stops = [c for c in trainer.callbacks if isinstance(c, EarlyStopping) and c.monitor == TRAIN_LOSS]
        if not any(stop.wait_count >= max(1, stop.patience // 2) for stop in stops):
            return
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] *= self.factor
        for stop in stops:
            stop.wait_count = 0
        self.dropped += 1

    def state_dict(self) -> dict:
        return {"dropped": self.dropped}

    def load_state_dict(self, state_dict: dict) -> None:
        self.dropped = state_dict["dropped"]
