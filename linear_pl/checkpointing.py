"""Checkpoints that survive a kill: one last.ckpt, refreshed on a time budget, written atomically."""

import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from linear_pl.callbacks import TrainingDiverged


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a checkpoint so that a kill at any moment leaves either the old file or the new one.

    Lightning's own save goes through a temporary file in $TMPDIR and then moves it; when $TMPDIR is
    on another filesystem the move is a plain copy, and a kill during it leaves a truncated file.
    Here the temporary file sits beside its target, is flushed to disk, then renamed over it.
    Loading always uses torch's safe loader: a checkpoint may come from anywhere.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if get_filesystem(path).protocol not in ("file", ("file", "local")):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # make the rename itself durable
        finally:
            os.close(directory)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        return super().load_checkpoint(path, map_location=map_location, weights_only=True)


class LastCheckpoint(ModelCheckpoint):
    """Keeps exactly one file, ``last.ckpt``.

    Saved after an epoch once ``min_interval`` seconds have passed since the last save (tiny epochs
    would otherwise spend more time writing checkpoints than training), at the end of training, and
    when training stops on an exception or SIGTERM. (Lightning 2.6 with save_top_k=0 saves only at
    the end; with save_top_k>=1 it also keeps an epoch=N file and saves every epoch.)
    """

    def __init__(self, min_interval: float = 5.0) -> None:
        super().__init__(save_top_k=0, save_last=True, save_on_exception=True, enable_version_counter=False)
        self.min_interval = min_interval
        self._last_save_time = time.monotonic()
        self._state_key = super().state_key

    @property
    def state_key(self) -> str:
        return self._state_key  # formatted once: see StopWhenConverged.state_key

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._last_save_time = time.monotonic()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        due = time.monotonic() - self._last_save_time >= self.min_interval
        # Every rank must take part in a save, so rank 0's clock decides for all.
        if trainer.strategy.broadcast(due) and not self._should_skip_saving_checkpoint(trainer):
            self.save_last_now(trainer)

    def on_train_batch_end(self, *args: Any, **kwargs: Any) -> None:
        pass  # saves happen at epoch end only; ModelCheckpoint would check its step interval every step

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pass  # saves happen at epoch end only

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._should_skip_saving_checkpoint(trainer):
            self.save_last_now(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        # After divergence the weights are worthless: keep the last good checkpoint instead.
        if self._should_save_on_exception(trainer) and not isinstance(exception, TrainingDiverged):
            self.save_last_now(trainer)

    def save_last_now(self, trainer: L.Trainer) -> None:
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        self._last_save_time = time.monotonic()
