"""The metric a run watches (``--monitor``, ``--mode``): best.ckpt, early stopping and the verdict follow it."""

import math
import sys
from typing import Literal

import lightning as L
from lightning.pytorch.utilities.model_helpers import is_overridden

# What the run watches when there is no validation data, and what it checks for divergence: the
# epoch's training loss, by the name Lightning users log it (lightning-hydra-template's too).
TRAIN_LOSS = "train/loss"

Mode = Literal["min", "max"]


class MonitorMissing(Exception):
    """The model never logged the monitored metric: one line, exit 2 (checkpoints already written stay)."""


class Monitor:
    """The watched metric, shared by the callbacks that follow it.

    Validation data or not is decided once, when fit starts (:meth:`choose`): without any, the
    training loss is watched instead, at the epochs validation would have run, and one line says so.
    """

    def __init__(self, name: str = "val/loss", mode: Mode = "min", every: int = 10) -> None:
        self.name, self.mode, self.every = name, mode, every
        self.asked = name  # what --monitor said, for the messages
        self.on_training = False  # True: no validation data, so the training loss is watched
        self._chosen = False

    def choose(self, trainer: L.Trainer) -> None:
        """At the fit's setup: keep the metric, or fall back to the training loss without validation data."""
        if self._chosen:
            return
        self._chosen = True
        if not has_validation_data(trainer):
            self.name, self.mode, self.on_training = TRAIN_LOSS, "min", True
            if trainer.is_global_zero:
                print(f"note: no validation data: best.ckpt and early stopping watch {TRAIN_LOSS}", file=sys.stderr)

    def due(self, trainer: L.Trainer) -> bool:
        """Whether the training loss is to be checked at this epoch's end (without validation data)."""
        return self.on_training and (trainer.current_epoch + 1) % self.every == 0

    def value(self, trainer: L.Trainer, model_name: str, epoch: int) -> float:
        """The metric's latest value, after ``epoch``; :class:`MonitorMissing` if the model has not logged it."""
        metrics = trainer.callback_metrics
        if self.name not in metrics:
            logged = ", ".join(sorted(metrics)) or "nothing"
            raise MonitorMissing(
                f"--monitor {self.name}: {model_name} logged no {self.name} by epoch {epoch} "
                f"(it logged: {logged}); give one of those, or log it with self.log({self.name!r}, ...)"
            )
        return float(metrics[self.name])

    def better(self, value: float, best: float | None) -> bool:
        """Whether ``value`` improves on ``best`` (a non-finite value never does)."""
        if not math.isfinite(value):
            return False
        return best is None or (value < best if self.mode == "min" else value > best)


def has_validation_data(trainer: L.Trainer) -> bool:
    """Whether this fit will validate at all: a val_dataloader with at least one batch, not switched off."""
    if trainer.limit_val_batches == 0:
        return False
    source = trainer.datamodule if trainer.datamodule is not None else trainer.lightning_module
    return serves_batches(source, "val_dataloader")


def serves_batches(source: L.LightningDataModule | L.LightningModule | None, hook: str) -> bool:
    """Whether ``source`` has a ``hook`` loader of its own (``val_dataloader``, ``test_dataloader``)
    with at least one batch."""
    if source is None or not is_overridden(hook, source):
        return False
    try:
        return len(getattr(source, hook)()) > 0
    except TypeError:  # an iterable without a length: it may have batches
        return True
