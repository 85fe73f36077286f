"""The progress line: every ``--log_every_n_epochs`` epochs, the losses and the monitored metric."""

import lightning as L

from linear_pl.runner.extras import extras_of
from linear_pl.runner.internals import PerEpochCallback
from linear_pl.runner.monitor import TRAIN_LOSS, Monitor
from linear_pl.runner.watch import first_lr


class ProgressReport(PerEpochCallback):
    """Every ``log_every_n_epochs`` epochs: one line on stdout, and a few scalars to every logger.

    Plain lines, not a progress bar, so the output reads the same in a terminal and in a CI log. The
    scalars are the learning rate, the training loss where the model put it in ``callback_metrics``
    without logging it (a model may, to save Lightning's per-epoch bookkeeping), and
    whatever the model's :class:`~linear_pl.runner.extras.RunExtra` callbacks add.
    """

    def __init__(self, log_every_n_epochs: int = 10, monitor: Monitor | None = None) -> None:
        self.log_every_n_epochs = log_every_n_epochs
        self.monitor = monitor or Monitor()
        self.last_reported_epoch = 0

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if epoch % self.log_every_n_epochs == 0:
            self.report(trainer, pl_module, epoch)

    def report(self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int, metrics: dict | None = None) -> None:
        """Log the scalars and print one line, after ``epoch`` epochs (1-based).

        ``metrics`` holds the values to print; by default the trainer's latest ``callback_metrics``.
        """
        metrics = trainer.callback_metrics if metrics is None else metrics
        self.last_reported_epoch = epoch
        if not trainer.is_global_zero:
            return  # one line is enough, and every rank's weights are the same
        scalars = {} if (lr := first_lr(trainer)) is None else {"train/lr": lr}
        if TRAIN_LOSS in metrics and TRAIN_LOSS not in trainer.logged_metrics:
            scalars[TRAIN_LOSS] = float(metrics[TRAIN_LOSS])
        for extra in extras_of(trainer):
            scalars.update(extra.scalars(trainer, pl_module))
        # Straight to every logger: cheaper than self.log, and allowed after fit as well.
        for logger in trainer.loggers:
            logger.log_metrics(scalars, step=trainer.global_step)

        line = f"Epoch [{epoch}/{trainer.max_epochs}]"
        for key in dict.fromkeys((TRAIN_LOSS, "val/loss", self.monitor.name)):
            if key in metrics:
                line += f"  {key.replace('/', '_')} {float(metrics[key]):.4f}"
        print(line, flush=True)
