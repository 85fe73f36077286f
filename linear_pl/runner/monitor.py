"""The metric a run watches (``--monitor``, ``--mode``): best.ckpt, early stopping and the verdict follow it;
and the training loss, under whichever name the model gives it."""

import math
import sys
from collections.abc import Mapping
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.utilities.model_helpers import is_overridden

from linear_pl.runner.errors import UsageError

# The training loss's name where the model logs none: the epoch's mean of what training_step returned.
TRAIN_LOSS = "train/loss"
# The names Lightning users log the training loss as (lightning-hydra-template's, Lightning's examples'), in
# the order they are looked for.
TRAIN_LOSS_NAMES = (TRAIN_LOSS, "train_loss", "loss")

Mode = Literal["min", "max"]


class Monitor:
    """The watched metric, shared by the callbacks that follow it.

    Whether the run validates is decided once, when fit starts (:meth:`choose`), as Lightning decides it.
    Without validation the metric is checked at the ends of training epochs, at the epochs validation would
    have run; the default, ``val/loss``, then becomes the training loss (:attr:`train_loss`). One line says
    so: at the start, or, for the training loss, once its name is known.
    """

    def __init__(self, name: str = "val/loss", mode: Mode = "min", every: int = 10) -> None:
        self.asked, self.mode, self.every = name, mode, every  # asked: what --monitor said
        self.on_training = False  # True: no validation, so the metric is checked at training epochs' ends
        self.follows_train_loss = False  # True: the default val/loss without validation: the training loss
        self.train_loss: str | None = None  # the training loss's name, once TrainingLoss has found it
        self.train_loss_returned = False  # True: none logged, so train/loss is what training_step returned
        self._chosen = False
        self._why_not: str | None = None

    @property
    def name(self) -> str:
        """The metric best.ckpt and early stopping follow."""
        return (self.train_loss or TRAIN_LOSS) if self.follows_train_loss else self.asked

    def choose(self, trainer: L.Trainer) -> None:
        """At the fit's setup: validation or not, and so what is watched when."""
        if self._chosen:
            return
        self._chosen = True
        why_not = why_no_validation(trainer)
        if why_not is None:
            return
        self.on_training, self._why_not = True, why_not
        if self.asked == "val/loss":
            self.follows_train_loss, self.mode = True, "min"
        else:
            self.say_watched(trainer)  # the training loss is said once TrainingLoss has found its name

    def say_watched(self, trainer: L.Trainer) -> None:
        """One line: why the run does not validate, and what it watches instead."""
        if trainer.is_global_zero:
            print(f"note: {self._why_not}: best.ckpt and early stopping watch {self.name}", file=sys.stderr)

    def due(self, trainer: L.Trainer) -> bool:
        """Whether the metric is to be checked at this training epoch's end (without validation)."""
        return self.on_training and (trainer.current_epoch + 1) % self.every == 0

    def value(self, trainer: L.Trainer, model_name: str, epoch: int) -> float:
        """The metric's latest value, after ``epoch``; :class:`UsageError` if the model has not logged it (the
        run ends in one line, and the checkpoints already written stay)."""
        metrics = trainer.callback_metrics
        if self.name not in metrics:
            logged = ", ".join(sorted(metrics)) or "nothing"
            if self.follows_train_loss:
                raise UsageError(
                    f"--monitor: without validation the run watches the training loss, and {model_name} logged "
                    f"none ({', '.join(TRAIN_LOSS_NAMES)}) nor returned one from training_step by epoch {epoch} "
                    f"(it logged: {logged}); give --monitor one of those"
                )
            raise UsageError(
                f"--monitor {self.name}: {model_name} logged no {self.name} by epoch {epoch} "
                f"(it logged: {logged}); give one of those, or log it with self.log({self.name!r}, ...)"
            )
        return float(metrics[self.name])

    def better(self, value: float, best: float | None) -> bool:
        """Whether ``value`` improves on ``best`` (a non-finite value never does)."""
        if not math.isfinite(value):
            return False
        return best is None or (value < best if self.mode == "min" else value > best)


class TrainingLoss(L.Callback):
    """Finds the training loss for the progress line, results.json, the divergence watch and the monitor.

    After the first epoch: the first of :data:`TRAIN_LOSS_NAMES` the model logged; where it logged none,
    the mean of the loss its ``training_step`` returned, logged as ``train/loss`` every epoch from then
    on. Runs before the run's other callbacks at an epoch's end; a name other than ``train/loss`` is said
    in one line.
    """

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self._sum: torch.Tensor | None = None  # on the device: read once an epoch
        self._steps = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sum, self._steps = None, 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.monitor.train_loss is not None and not self.monitor.train_loss_returned:
            return  # the model logs its training loss: nothing to sum
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if torch.is_tensor(loss) and loss.numel() == 1:
            loss = loss.detach().reshape(())
            self._sum = loss if self._sum is None else self._sum + loss
            self._steps += 1

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        monitor = self.monitor
        if monitor.train_loss is None:
            logged = [name for name in TRAIN_LOSS_NAMES if name in trainer.callback_metrics]
            # Every rank decides alike: the logged names are the same everywhere, and so is whether a step returned.
            returned = trainer.strategy.reduce_boolean_decision(self._sum is not None, all=True)
            if logged:
                monitor.train_loss = logged[0]
            elif returned:
                monitor.train_loss, monitor.train_loss_returned = TRAIN_LOSS, True
            else:
                return  # none: nothing to show or watch (asked again next epoch)
            if trainer.is_global_zero and (monitor.train_loss != TRAIN_LOSS or monitor.train_loss_returned):
                how = "the mean loss training_step returns" if monitor.train_loss_returned else "as the model logs it"
                print(f"note: the training loss is {monitor.train_loss}, {how}", file=sys.stderr)
            if monitor.follows_train_loss:
                monitor.say_watched(trainer)
        if monitor.train_loss_returned and self._sum is not None:
            # The mean over every rank's steps; ProgressReport writes it to the loggers with its line.
            pl_module.log(TRAIN_LOSS, self._sum / self._steps, sync_dist=True, logger=False)


def why_no_validation(trainer: L.Trainer) -> str | None:
    """Why this fit will not validate, as Lightning decides it (None: it will): no ``validation_step``,
    ``limit_val_batches`` 0, or no validation data."""
    model = trainer.lightning_module
    if not is_overridden("validation_step", model):
        return f"no validation_step in {type(model).__name__}"
    if trainer.limit_val_batches == 0:
        return "--trainer.limit_val_batches 0"
    source = trainer.datamodule if trainer.datamodule is not None else model
    if not serves_batches(source, "val_dataloader"):
        return "no validation data"
    return None


def has_validation_data(trainer: L.Trainer) -> bool:
    """Whether this fit will validate at all: a validation_step, and a val_dataloader with at least one
    batch, not switched off."""
    return why_no_validation(trainer) is None


def serves_batches(source: L.LightningDataModule | L.LightningModule | None, hook: str) -> bool:
    """Whether ``source`` has a ``hook`` loader of its own (``val_dataloader``, ``test_dataloader``)
    with at least one batch."""
    if source is None or not is_overridden(hook, source):
        return False
    try:
        return len(getattr(source, hook)()) > 0
    except TypeError:  # an iterable without a length: it may have batches
        return True
