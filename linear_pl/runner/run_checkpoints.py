"""RunCheckpoints: the run's last.ckpt and best.ckpt, refreshed within a budget of the training time, saved
when training stops on an exception or a signal, and holding what Lightning's checkpoints lack (the random
states) so that a resumed run continues as an uninterrupted one would."""

import sys
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint

from linear_pl.runner.checkpoint_io import ours
from linear_pl.runner.errors import RunFilesError
from linear_pl.runner.internals import resumed_mid_epoch
from linear_pl.runner.loader_state import (
    make_train_loaders_resumable,
    undo_train_loaders_resumable,
    unresumable_loaders,
)
from linear_pl.runner.monitor import Monitor
from linear_pl.runner.rng_state import rng_states, set_rng_states
from linear_pl.runner.stop_signal import StopSignal
from linear_pl.runner.watch import TrainingDiverged

# An epoch at least this long (or the first of a fit, whose length is not known yet) is saved and stopped
# between steps as well; a shorter one between epochs only.
LONG_EPOCH_SECONDS = 1.0
# Under DDP the ranks agree on a save or a stop with two collectives; they check about this often.
DDP_CHECK_SECONDS = 0.2

# Lightning's warning for a loader that cannot resume within an epoch: replaced by one line of ours.
NOT_RESUMABLE_WARNING = "You're resuming from a checkpoint that ended before the epoch ended"

# A save's cost (the training thread's wait, and the writer's CPU time where it shares the training's
# cores) is kept to this share of the training time: the interval between saves stretches to fit it.
BUDGET = 0.02
# A checkpoint's cost before one has been measured, per GiB it holds, on the slow side, so that a large
# model's first save waits for the budget rather than overshooting it. Where training runs on the host
# the writer's serialization takes the training's cores (a first write into new files costs most);
# beside an accelerator training waits only for the copy to host memory.
GUESSED_SECONDS_PER_GIB = {"host": 4.0, "accelerator": 1.0}
GIB = 1 << 30


def state_bytes(trainer: L.Trainer) -> int:
    """The bytes of the tensors a checkpoint holds: the model's and the optimizers' state."""
    tensors = list(trainer.lightning_module.state_dict().values())
    for optimizer in trainer.optimizers:
        tensors += [v for state in optimizer.state.values() for v in state.values() if torch.is_tensor(v)]
    return sum(t.numel() * t.element_size() for t in tensors)


class RunCheckpoints(Checkpoint):
    """Two files in the run's ``checkpoints/``: ``last.ckpt`` and ``best.ckpt`` (the best value of the
    run's :class:`Monitor`).

    ``last.ckpt`` is refreshed after an epoch once ``min_interval`` seconds have passed since the last
    save and the checkpoints' cost so far, with one more, stays within ``BUDGET`` of the training time
    (:meth:`due`), at the end of training, and when training stops on an exception or a signal. In an
    epoch of a second or more (the first epoch of a fit, or one after a long epoch) it is also
    refreshed between steps, and a signal stops after the step under way; the train loaders are made
    resumable (``loader_state``) so that such a checkpoint continues with the same batches.
    ``best.ckpt`` is saved each time the monitored metric improves (its cost counts in the budget).
    Both go through ``trainer.save_checkpoint``, and so through :class:`AtomicCheckpointIO`, which
    writes them in the background from a copy in host memory, one at a time. (Lightning's
    ModelCheckpoint would keep extra ``epoch=N`` files, or, with ``save_top_k=0``, save last.ckpt
    only at the end.) A ``Checkpoint``, Lightning's public base class, so that Lightning adds no
    checkpoint callback of its own and runs this one last.

    Its state holds the global random states (torch, numpy, Python): a user's
    ``DataLoader(shuffle=True)`` draws each epoch's order from them, and Lightning's checkpoints do
    not keep them, so without this a resumed run would shuffle differently from an uninterrupted one.
    """

    def __init__(self, min_interval: float = 5.0, monitor: Monitor | None = None, dirpath: Path | None = None) -> None:
        self.min_interval, self.monitor = min_interval, monitor or Monitor()
        self.dirpath = dirpath
        self.stop_signal = StopSignal()
        self.best_score: float | None = None
        self.best_epoch: int | None = None
        self._last_save_time = self._train_start = time.monotonic()
        self._epoch_start = self._last_save_time
        self._spent = 0.0  # seconds the checkpoints have cost training so far
        self._cost: float | None = None  # the latest save's cost, once its write has finished
        self._waited = 0.0  # the latest save's wait on the training thread, until its write is accounted
        self._unaccounted = False
        self._guess: float | None = None  # a save's cost before one has been measured
        self._said_stretched = False
        self._saved_at: dict[str, int] = {}  # the step each file was last saved at
        self._best_pending = False  # a better value in the fit's last epoch: best.ckpt made at its end
        self.waited_seconds = 0.0  # the training thread's waits on saves, all of them
        self.checked_step: int | None = None  # the step at which the monitored value was last checked
        self.best_step: int | None = None
        self._epoch_seconds: float | None = None  # the previous epoch's length
        self._long_epoch = True  # saved and stopped between steps too: the previous epoch was long, or none ran
        self._check_every = 1  # steps between checks (under DDP)
        self._loaded_rng: dict | None = None
        self.stopped_at: str | None = None  # where a signal stopped training within an epoch

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":
            self.monitor.choose(trainer)
        if self.dirpath is None:  # a run directory of the user's logger
            self.dirpath = Path(trainer.log_dir or trainer.default_root_dir) / "checkpoints"
        if stage == "fit":
            make_train_loaders_resumable(trainer)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":
            undo_train_loaders_resumable(trainer)

    @property
    def best_path(self) -> Path | None:
        """best.ckpt, once it has been written."""
        return None if self.best_epoch is None else self.dirpath / "best.ckpt"

    def save(self, trainer: L.Trainer, name: str) -> None:
        """Write ``name``.ckpt (every DDP rank must call it; rank 0 writes, in the background)."""
        start = time.monotonic()
        self._account(trainer, wait=True)  # the write in flight first: one copy in host memory at most
        fitting = trainer.state.fn == "fit" and trainer.state.status == "running"
        if name == "best" and not fitting and self._saved_at.get("last") == trainer.global_step:
            # After fit, last.ckpt already holds these weights: best.ckpt is a second name for it.
            if self._link(trainer, "last", "best"):
                return
        trainer.save_checkpoint(self.dirpath / f"{name}.ckpt", weights_only=False)  # the full state, said so
        now = time.monotonic()
        self._waited, self._unaccounted = now - start, True
        self.waited_seconds += now - start
        self._saved_at[name] = trainer.global_step
        if name == "last":
            self._last_save_time = now

    def _link(self, trainer: L.Trainer, source: str, name: str) -> bool:
        """Make ``name``.ckpt a second name of ``source``.ckpt (False: the checkpoint IO is not ours)."""
        io = trainer.strategy.checkpoint_io
        if not ours(io):
            return False
        if trainer.is_global_zero:
            io.link(self.dirpath / f"{source}.ckpt", self.dirpath / f"{name}.ckpt")
        trainer.strategy.barrier()
        self._saved_at[name] = trainer.global_step
        return True

    def _account(self, trainer: L.Trainer, wait: bool = False) -> None:
        """Add the latest save's cost to the account once its write has finished (``wait``: wait for it).

        Its cost is the training thread's wait, plus the writer's CPU time where training runs on the
        host: there the writer takes cores the training would use; beside an accelerator it does not."""
        io = trainer.strategy.checkpoint_io
        if ours(io) and not wait and io.busy():
            return
        if ours(io):
            io.wait()
        if self._unaccounted:
            on_host = ours(io) and trainer.strategy.root_device.type == "cpu"
            self._cost = self._waited + (io.writer_cpu_seconds if on_host else 0.0)
            self._spent += self._cost
            self._unaccounted = False

    def finish(self, trainer: L.Trainer) -> None:
        """Wait for the write in flight (a failed one raises :class:`RunFilesError` here)."""
        self._account(trainer, wait=True)

    def due(self, trainer: L.Trainer) -> bool:
        """Whether to refresh last.ckpt now: ``min_interval`` has passed since the last save, no write is
        in flight, and the checkpoints' cost so far plus one more stays within ``BUDGET`` of the time
        trained (``min_interval`` 0: at every chance, whatever it costs). Says once, in one line, where a
        checkpoint's cost stretches the interval beyond ``min_interval``."""
        now = time.monotonic()
        if self.min_interval == 0:
            return True  # asked for at every chance, whatever it costs
        if now - self._last_save_time < self.min_interval:
            return False
        io = trainer.strategy.checkpoint_io
        if ours(io) and io.busy():
            return False
        self._account(trainer)
        if self._cost is None and self._guess is None:
            where = "host" if trainer.strategy.root_device.type == "cpu" else "accelerator"
            self._guess = state_bytes(trainer) / GIB * GUESSED_SECONDS_PER_GIB[where]
        expected = self._guess if self._cost is None else self._cost
        if expected / BUDGET > self.min_interval and not self._said_stretched and trainer.is_global_zero:
            self._said_stretched = True
            print(
                f"note: a checkpoint costs training about {expected:.2g} s here: last.ckpt is refreshed about every "
                f"{expected / BUDGET:.0f} s instead of every {self.min_interval:g} s (--checkpoint_every_seconds), "
                f"so that checkpoints take at most {BUDGET:.0%} of the training time",
                file=sys.stderr,
            )
        return self._spent + expected <= BUDGET * (now - self._train_start)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_save_time = self._train_start = self._epoch_start = time.monotonic()
        self.stop_signal.listen()
        self._long_epoch = True  # the first epoch's length is not known yet
        if resumed_mid_epoch(trainer):
            # The loaders replayed their own draws from the random state; whatever ran since the
            # checkpoint was loaded (building the loaders, hooks) must not shift what the steps draw.
            if self._loaded_rng is not None:
                set_rng_states(self._loaded_rng)
            cannot = unresumable_loaders(trainer)
            if cannot:
                warnings.filterwarnings("ignore", message=NOT_RESUMABLE_WARNING)  # said here, in one line
                if trainer.is_global_zero:
                    batch = trainer.fit_loop.epoch_loop.batch_progress.current.completed
                    print(
                        f"warning: the checkpoint was saved after batch {batch} of epoch {trainer.current_epoch + 1}, "
                        f"and the train loader ({', '.join(cannot)}) cannot resume within an epoch: the rest of "
                        "this epoch repeats its first batches (a torch DataLoader, or one with state_dict and "
                        "load_state_dict, resumes exactly)",
                        file=sys.stderr,
                    )
        self._loaded_rng = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        now = time.monotonic()
        self._long_epoch = self._epoch_seconds is None or self._epoch_seconds >= LONG_EPOCH_SECONDS
        if trainer.world_size > 1 and self._epoch_seconds:  # the ranks must check at the same steps
            steps_per_second = trainer.num_training_batches / self._epoch_seconds
            self._check_every = trainer.strategy.broadcast(max(1, int(DDP_CHECK_SECONDS * steps_per_second)))
        elif trainer.world_size > 1:
            self._check_every = 10
        self._epoch_start = now

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Within a long epoch: refresh last.ckpt every ``min_interval`` seconds, and stop on a signal."""
        if not self._long_epoch or batch_idx + 1 >= trainer.num_training_batches:
            return  # the epoch's end saves and stops (a checkpoint of its last step would restart it)
        if (batch_idx + 1) % trainer.accumulate_grad_batches:
            return  # accumulated gradients are in no checkpoint: only between optimizer steps
        if trainer.world_size > 1 and trainer.global_step % self._check_every:
            return
        stop = self.stop_signal.agreed(trainer)
        due = trainer.strategy.broadcast(self.due(trainer))
        # A step whose loss is not finite has left weights no checkpoint should keep: last.ckpt stays the last
        # good one, and the loss watch stops the run at the epoch's end (a collective: every rank decides alike).
        if (stop or due) and trainer.strategy.reduce_boolean_decision(_finite(outputs), all=True):
            self.save(trainer, "last")
        if stop:
            self.stopped_at = (
                f"at step {trainer.global_step} (batch {batch_idx + 1}/{trainer.num_training_batches} "
                f"of epoch {trainer.current_epoch + 1})"
            )
            self.stop_signal.stop_now()

    @property
    def signal(self) -> int | None:
        """SIGINT or SIGTERM, once one has asked training to stop (a sweep sets it to stop its trial)."""
        return self.stop_signal.received

    @signal.setter
    def signal(self, signum: int | None) -> None:
        self.stop_signal.received = signum

    def where_stopped(self, trainer: L.Trainer) -> str:
        """Where a signal stopped training: within an epoch, or after one."""
        return self.stopped_at or f"after epoch {trainer.current_epoch}"

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_seconds = time.monotonic() - self._epoch_start
        ending = self._ending(trainer)
        if self.monitor.due(trainer):  # no validation data: the training loss decides the best
            self.check_best(trainer, pl_module, defer=ending)
        # Every rank must take part in a save: stop if a signal reached any rank; rank 0's clock decides.
        # The fit's last epoch saves at the training's end.
        stop = self.stop_signal.agreed(trainer)
        if stop or trainer.strategy.broadcast(not ending and self.due(trainer)):
            self.save(trainer, "last")
        if stop:
            trainer.should_stop = True

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and not self.monitor.on_training:
            at_max_steps = trainer.max_steps != -1 and trainer.global_step >= trainer.max_steps
            self.check_best(trainer, pl_module, defer=at_max_steps)

    @staticmethod
    def _ending(trainer: L.Trainer) -> bool:
        """Whether no step follows this epoch, whatever else happens: max_steps reached, or max_epochs'."""
        if trainer.max_steps != -1 and trainer.global_step >= trainer.max_steps:
            return True
        return trainer.max_epochs is not None and 0 <= trainer.max_epochs <= trainer.current_epoch + 1

    def check_best(self, trainer: L.Trainer, pl_module: L.LightningModule, defer: bool = False) -> None:
        """Save best.ckpt if the monitored metric's latest value is the best yet (every DDP rank calls it).

        ``defer``: no step follows, so the save at the training's end holds these weights; best.ckpt is
        then made a second name of that last.ckpt rather than a write of its own."""
        # current_epoch counts finished epochs: during fit, an epoch's validation or end ends the one under way.
        fitting = trainer.state.fn == "fit" and trainer.state.status == "running"
        epoch = trainer.current_epoch + (1 if fitting else 0)
        score = self.monitor.value(trainer, type(pl_module).__name__, epoch)
        self.checked_step = trainer.global_step
        if self.monitor.better(score, self.best_score):  # the same on every rank: synced
            self.best_score, self.best_epoch, self.best_step = score, epoch, trainer.global_step
            if defer and fitting:
                self._best_pending = True
            else:
                self.save(trainer, "best")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.stop_signal.restore()
        self.save(trainer, "last")
        if self._best_pending:
            self._best_pending = False
            if not self._link(trainer, "last", "best"):
                self.save(trainer, "best")

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.stop_signal.restore()
        if self._best_pending and not isinstance(exception, RunFilesError):  # validated weights: keep them
            self._best_pending = False
            self.save(trainer, "best")
        if self.stopped_at is not None:
            return  # a signal stopped it after a step, and last.ckpt was saved there
        # After divergence the weights are worthless: keep the last good checkpoint instead; after a failed
        # write, the next would fail as well.
        if not isinstance(exception, (TrainingDiverged, RunFilesError)):
            self.save(trainer, "last")

    def state_dict(self) -> dict[str, Any]:
        return {
            "best_score": self.best_score, "best_epoch": self.best_epoch, "best_step": self.best_step,
            "rng": rng_states(),
        }  # fmt: skip

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_score, self.best_epoch = state_dict["best_score"], state_dict["best_epoch"]
        self.best_step = state_dict.get("best_step")  # not in checkpoints written before it was kept
        if "rng" in state_dict:  # checkpoints written before the random states were kept have none
            set_rng_states(state_dict["rng"])
            self._loaded_rng = state_dict["rng"]  # set again at on_train_start after a mid-epoch save


def _finite(outputs: Any) -> bool:
    """Whether a training step's loss is finite (True for a step that returned none)."""
    loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
    return not torch.is_tensor(loss) or bool(torch.isfinite(loss.detach()).all())
