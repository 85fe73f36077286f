"""A run as data: what ``build_run`` made (trainer, model, data, checkpoints, monitor, run directory), what
fitting it gives back (:class:`Outcome`), and ``execute``, which runs it and says how it ended."""

import contextlib
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from jsonargparse import Namespace
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException

from linear_pl.runner.checkpoint_files import load_checkpoint_safely, version_of
from linear_pl.runner.checkpoint_io import AtomicCheckpointIO, ours
from linear_pl.runner.errors import RunFilesError, UsageError
from linear_pl.runner.extras import extras_of
from linear_pl.runner.flags import what_was_rejected
from linear_pl.runner.monitor import Monitor, TrainingLoss
from linear_pl.runner.predict import predict_lines, rows_of
from linear_pl.runner.progress import ProgressReport
from linear_pl.runner.results import report_run
from linear_pl.runner.run_checkpoints import RunCheckpoints
from linear_pl.runner.run_dir import choose_run_dir, continue_command, release_run_dir
from linear_pl.runner.watch import LossWatch, TrainingDiverged, early_stopping, warn_about_clashes

EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}  # the shell's 128 + signal number


@dataclass
class Outcome:
    """How a fit ended: results.json's content (None where nothing was written), why it stopped, the exit status."""

    status: int
    stopped_because: str | None = None
    results: dict[str, Any] | None = None
    run_dir: Path | None = None
    message: str | None = None  # the line for stderr, where the run ended badly or was interrupted


@dataclass
class Run:
    """One command's run, built: its parts, and the callbacks of ours that follow it."""

    command: str  # fit, validate, test, predict, export or serve
    config: Namespace  # the subcommand's parsed flags
    args: list[str]  # the flags as given, for the continue command
    checkpoint: Path | None = None  # --ckpt_path, resolved
    run_dir: Path | None = None  # None: nothing written (validate, test, predict, fast_dev_run), or the logger's own
    named_run_dir: bool = False  # the caller chose run_dir (a sweep's trial)
    callbacks: list[L.Callback] = field(default_factory=list)
    monitor: Monitor | None = None
    progress: ProgressReport | None = None
    checkpoints: RunCheckpoints | None = None
    early_stopping: L.Callback | None = None
    trainer: L.Trainer | None = None
    model: L.LightningModule | None = None
    datamodule: L.LightningDataModule | None = None

    @classmethod
    def start(
        cls, command: str, config: Namespace, checkpoint: Path | None, given: list[str], run_dir: Path | None = None,
        callbacks: list[L.Callback] | None = None,
    ) -> "Run":  # fmt: skip
        """The run's directory (claimed atomically; a resumed run continues its own) and its callbacks."""
        run = cls(
            command, config, given, checkpoint, callbacks=list(callbacks or []), named_run_dir=run_dir is not None
        )
        trainer = config.trainer
        if command == "fit" and trainer.logger in (None, True) and not trainer.fast_dev_run:
            root = Path(trainer.default_root_dir or ".")
            run.run_dir = run_dir or choose_run_dir(root, version_of(checkpoint, root))
        run.monitor = Monitor(config.monitor, config.mode, config.log_every_n_epochs)
        if command == "fit":
            run.progress = ProgressReport(config.log_every_n_epochs, run.monitor)
            dirpath = None if run.run_dir is None else run.run_dir / "checkpoints"
            if not trainer.fast_dev_run:
                run.checkpoints = RunCheckpoints(config.checkpoint_every_seconds, run.monitor, dirpath=dirpath)
        return run

    def trainer_arguments(self, theirs: list[L.Callback]) -> dict[str, Any]:
        """The Trainer's logger, callbacks and checkpoint IO for this run, beside the user's own callbacks."""
        kwargs: dict[str, Any] = {"plugins": [AtomicCheckpointIO()]}
        if self.command != "fit":
            return {**kwargs, "logger": False}
        trainer = self.config.trainer
        if trainer.logger in (None, True) and not trainer.fast_dev_run:
            # default_hp_metric=False: the hparams get a real metric at the end instead of -1. Without a run
            # directory of ours (torchrun, SLURM), the logger picks one, as Lightning does.
            where = {"save_dir": trainer.default_root_dir or "."}
            if self.run_dir is not None:
                where = {"save_dir": self.run_dir.parent.parent, "name": self.run_dir.parent.name}
                where["version"] = self.run_dir.name
            kwargs["logger"] = TensorBoardLogger(**where, default_hp_metric=False)
        self.early_stopping = early_stopping(theirs, self.monitor, self.config.patience, self.config.min_delta)
        warn_about_clashes(theirs)
        # TrainingLoss first: at an epoch's end the others read the training loss it finds.
        ours = [TrainingLoss(self.monitor), *self.callbacks, self.progress, LossWatch(self.monitor), self.checkpoints]
        ours += [self.early_stopping] if self.early_stopping not in theirs else []
        kwargs["callbacks"] = theirs + [c for c in ours if c is not None]
        return kwargs

    def built(self, trainer: L.Trainer, model: L.LightningModule, datamodule: L.LightningDataModule | None) -> None:
        self.trainer, self.model, self.datamodule = trainer, model, datamodule
        if self.checkpoint is not None and self.command != "fit":  # the weights alone: nothing else is restored
            self.model.load_state_dict(load_checkpoint_safely(self.checkpoint)["state_dict"])
        if self.config.compile:
            compile_forward(self.model)

    def release(self) -> None:
        release_run_dir(self.run_dir)

    def what_it_read(self) -> str:
        """The checkpoint a validate, test or predict read, for its error line."""
        return "no checkpoint read" if self.checkpoint is None else f"the checkpoint it read: {self.checkpoint}"

    def kept_checkpoints(self) -> str:
        """The checkpoints a failed run leaves, named, for its error line."""
        if self.checkpoints is None or self.checkpoints.dirpath is None:
            return "no checkpoint had been written yet"
        io = None if self.trainer is None else self.trainer.strategy.checkpoint_io
        if ours(io):
            with contextlib.suppress(RunFilesError):  # the write in flight first; a failed one is the error said
                io.wait()
        named = (("last good checkpoint", "last.ckpt"), ("best checkpoint", "best.ckpt"))
        kept = [
            f"{what} kept: {self.checkpoints.dirpath / n}"
            for what, n in named
            if (self.checkpoints.dirpath / n).exists()
        ]
        return "; ".join(kept) or "no checkpoint had been written yet"


def compile_forward(model: L.LightningModule) -> None:
    """``--compile``: compile the model's forward, or say in one line why torch.compile cannot work here.

    Only ``forward``, which the steps call, and not the whole module: compiling the module would trace
    the training step too, and Lightning's ``self.log`` inside it cannot be traced (torch 2.13,
    Lightning 2.6). The weights keep their names, so checkpoints load with or without ``--compile``.
    """
    try:
        torch.compile(lambda x: x + 1)(torch.zeros(1))
    except Exception as error:  # no C++ compiler, an unsupported Python or platform, ...
        raise UsageError(f"--compile: torch.compile cannot work on this machine ({what_was_rejected(error)})") from None
    model.forward = torch.compile(model.forward)


def fit(run: Run) -> Outcome:
    """Train and report. The outcome's status: 0, 1 diverged or a write failed, 2 bad input, 130/143 interrupted."""
    trainer, model = run.trainer, run.model
    start, diverged, interrupted = time.perf_counter(), None, None
    try:
        try:
            trainer.fit(model, run.datamodule, ckpt_path=run.checkpoint)
        except TrainingDiverged as error:
            diverged = error
        except SystemExit as error:  # a second Ctrl-C (Lightning exits 1) or SIGTERM mid-epoch
            if trainer.state.status != "interrupted":
                raise
            interrupted = signal.SIGTERM if isinstance(error, SIGTERMException) else signal.SIGINT
        fit_seconds = time.perf_counter() - start
        if trainer.fast_dev_run:
            return Outcome(0, message="fast_dev_run: no run directory written (no results.json, no checkpoints)")
        run_dir = run.run_dir or Path(trainer.log_dir)  # a collective under DDP: every rank asks
        stopped_because = "interrupted" if interrupted else why_it_stopped(run, diverged is not None)
        seed = run.config.seed_everything
        results = report_run(trainer, model, run.progress, run.checkpoints, run_dir, fit_seconds, stopped_because, seed)
    except UsageError as error:  # the monitored metric was never logged: what is kept
        return Outcome(2, message=f"error: {error}; {run.kept_checkpoints()}")
    except RunFilesError as error:  # a full disk, a lost mount: what failed, and what is kept
        return Outcome(1, message=f"error: writing the run's files failed: {error}; {run.kept_checkpoints()}")
    outcome = Outcome(0, stopped_because, results, run_dir)
    if not trainer.is_global_zero:
        return outcome
    if diverged is not None:
        outcome.status, outcome.message = 1, f"error: {diverged}; {run.kept_checkpoints()}"
    elif stopped_because == "interrupted":
        signum = interrupted or run.checkpoints.signal
        last = run_dir / "checkpoints" / "last.ckpt"
        # "last" is the newest run's under lightning_logs/: a run in a directory of its caller's names its own.
        checkpoint = str(last) if run.named_run_dir else "last"
        outcome.status = EXIT_STATUS[signum]
        outcome.message = (
            f"Interrupted ({signal.Signals(signum).name}) {run.checkpoints.where_stopped(trainer)}: "
            f"{last} saved; continue with: {continue_command(run.args, checkpoint)}"
        )
    return outcome


def why_it_stopped(run: Run, diverged: bool) -> str:
    """Why training ended: diverged, interrupted, a model extra's reason (converged), val_plateau or
    train_plateau, max_steps, max_time or max_epochs."""
    trainer = run.trainer
    if diverged:
        return "diverged"
    if run.checkpoints is not None and run.checkpoints.signal is not None:
        return "interrupted"
    for extra in extras_of(trainer):
        if (reason := extra.stop_reason()) is not None:
            return reason
    if run.early_stopping is not None and run.early_stopping.stopped_epoch > 0:
        return "train_plateau" if run.monitor.on_training else "val_plateau"
    if trainer.max_steps != -1 and trainer.global_step >= trainer.max_steps:
        return "max_steps"
    epochs_done = trainer.max_epochs is not None and 0 <= trainer.max_epochs <= trainer.current_epoch
    if run.config.trainer.max_time is not None and not epochs_done:
        return "max_time"
    return "max_epochs"


def evaluate(run: Run) -> dict[str, float]:
    """``validate`` or ``test`` the checkpoint: its metrics."""
    method = run.trainer.validate if run.command == "validate" else run.trainer.test
    (metrics,) = method(run.model, run.datamodule, verbose=False)
    return {name: float(value) for name, value in sorted(metrics.items())}


def predict(run: Run) -> list[str]:
    """One line per prediction: over ``--x`` or ``--input`` rows, or the data's ``predict_dataloader``."""
    rows = rows_of(run.config, run.model)
    if rows is not None:
        batches = run.trainer.predict(run.model, rows)
    else:
        batches = run.trainer.predict(run.model, datamodule=run.datamodule)
    return predict_lines(batches)


def execute(run: Run) -> int:
    """Run the command, print what it ends with, and return the exit status."""
    if run.command == "fit":
        outcome = fit(run)
        if outcome.message:
            print(outcome.message, file=sys.stdout if outcome.status == 0 else sys.stderr)
        return outcome.status
    if run.checkpoint is None:
        raise UsageError(f"{run.command} needs --ckpt_path best, last or a path")
    if run.command == "export":
        from linear_pl.runner.export import export  # noqa: PLC0415 -- torch.onnx and the export extra: exports only

        return export(run)
    if run.command == "serve":
        try:
            from linear_pl.runner.serve import serve  # noqa: PLC0415 -- LitServe only for `serve`
        except ImportError as error:
            if (error.name or "").split(".")[0] not in ("litserve", "fastapi", "uvicorn", "onnxruntime"):
                raise
            install = 'pip install -e ".[serve]"'
            raise UsageError(f"serve needs the serve extra ({error.name} is missing): {install}") from None
        return serve(run)
    if run.command == "predict":
        lines = predict(run)
        print("\n".join(lines))
        if run.config.output:
            Path(run.config.output).write_text("\n".join(lines) + "\n")
        return 0
    shown = "  ".join(f"{k.replace('/', '_')} {v:.6g}" for k, v in evaluate(run).items())
    print(f"{run.checkpoint}: {shown}")
    return 0
