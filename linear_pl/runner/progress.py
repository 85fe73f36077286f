"""The progress line: every ``--log_every_n_epochs`` epochs, the losses and the monitored metric; within
a long epoch, the step, the loss and the steps per second."""

import sys
import time
from collections.abc import Mapping
from typing import Any

import lightning as L

from linear_pl.runner.extras import extras_of
from linear_pl.runner.monitor import TRAIN_LOSS, Monitor
from linear_pl.runner.watch import first_lr

# Within an epoch: a line this often on a terminal (rewritten in place), and, in a log file, a plain line
# this often.
TERMINAL_SECONDS, LOG_SECONDS = 2.0, 30.0


class ProgressReport(L.Callback):
    """Every ``log_every_n_epochs`` epochs: one line on stdout, and a few scalars to every logger.

    Plain lines, not a progress bar, so the output reads the same in a terminal and in a CI log. The
    scalars are the learning rate, the training loss where it was logged with ``logger=False`` (the
    example's, and TrainingLoss's), and whatever the model's :class:`~linear_pl.runner.extras.RunExtra`
    callbacks add: at the step of the line, so that the loggers' curves match the lines printed.
    """

    def __init__(self, log_every_n_epochs: int = 10, monitor: Monitor | None = None) -> None:
        self.log_every_n_epochs = log_every_n_epochs
        self.monitor = monitor or Monitor()
        self.last_reported_epoch = 0
        self.terminal = sys.stdout.isatty()
        self.every_seconds = TERMINAL_SECONDS if self.terminal else LOG_SECONDS
        self._last_line = 0.0
        self._last_step = 0
        self._in_place = False  # a line on the terminal waits to be overwritten

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_line = time.monotonic()
        self._last_step = trainer.global_step

    on_train_start = on_train_epoch_start  # a resumed run may start within an epoch

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """A step line once ``every_seconds`` have passed in the epoch under way: only a long epoch has one."""
        now = time.monotonic()
        if now - self._last_line < self.every_seconds or not trainer.is_global_zero:
            return
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        line = (
            f"Epoch {trainer.current_epoch + 1}{out_of(trainer.max_epochs)}  batch {batch_idx + 1}/"
            f"{trainer.num_training_batches}  step {trainer.global_step}{out_of(trainer.max_steps)}"
        )
        if loss is not None:
            line += f"  loss {float(loss):.4g}"  # the one device read here: once a line, not once a step
        line += f"  {pace(trainer.global_step - self._last_step, now - self._last_line)}"
        if self.terminal:
            print(f"\r{line}\x1b[K", end="", flush=True)
            self._in_place = True
        else:
            print(line, flush=True)
        self._last_line, self._last_step = now, trainer.global_step

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._in_place:  # the epoch's line replaces the step line
            print("\r\x1b[K", end="", flush=True)
            self._in_place = False
        epoch = trainer.current_epoch + 1
        if trainer.max_steps != -1 and trainer.global_step >= trainer.max_steps:
            return  # max_steps ends the fit here, perhaps within the epoch: the run's report validates and says it
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
        # Straight to every logger: this also runs after fit (the final report), where self.log is refused.
        for logger in trainer.loggers:
            logger.log_metrics(scalars, step=trainer.global_step)

        line = f"Epoch [{epoch}{out_of(trainer.max_epochs)}]"
        if trainer.max_steps != -1:
            line += f"  step {trainer.global_step}{out_of(trainer.max_steps)}"
        train_loss = self.monitor.train_loss or TRAIN_LOSS
        for key in dict.fromkeys((train_loss, "val/loss", self.monitor.name)):
            if key in metrics:
                line += f"  {key.replace('/', '_')} {float(metrics[key]):.4f}"
        print(line, flush=True)


def out_of(limit: int | None) -> str:
    """The limit as "/N" (max_epochs, max_steps), or "" where the trainer has none (Lightning's -1 or None)."""
    return "" if limit is None or limit < 0 else f"/{limit}"


def pace(steps: int, seconds: float) -> str:
    """Steps per second, or seconds per step where a step takes longer than a second."""
    if steps > 0 and seconds > steps:
        return f"{seconds / steps:.1f} s/step"
    return f"{steps / seconds:.0f} steps/s"
