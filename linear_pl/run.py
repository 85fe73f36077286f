"""One run of a built command: fit (or validate), then the report, and the exit status that says how it ended."""

import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import lightning as L

from linear_pl.callbacks import TrainingDiverged
from linear_pl.report import report_run
from linear_pl.run_dir import continue_command

if TYPE_CHECKING:
    from linear_pl.cli import LinearCLI

EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}  # the shell's 128 + signal number


LAST_AND_BEST = (("last good checkpoint", "last.ckpt"), ("best checkpoint", "best.ckpt"))


def validate(cli: "LinearCLI") -> int:
    """``validate --ckpt_path ...``: print the checkpoint's validation loss; the exit status."""
    if cli.ckpt_path is None:
        print("error: validate needs --ckpt_path best, last or a path", file=sys.stderr)
        return 2
    (metrics,) = cli.trainer.validate(cli.model, cli.datamodule, verbose=False)  # its weights: loaded safely
    print(f"{cli.ckpt_path}: val_loss {metrics['val/loss']:.6g}")
    return 0


def fit(cli: "LinearCLI", args: list[str]) -> int:
    """Train, report, and return the exit status: 0, 1 diverged, 130/143 interrupted."""
    trainer, model = cli.trainer, cli.model
    start, diverged, interrupted = time.perf_counter(), None, None
    try:
        trainer.fit(model, cli.datamodule, ckpt_path=cli.ckpt_path)
    except TrainingDiverged as error:
        diverged = error
    except SystemExit as error:  # a second Ctrl-C (Lightning exits 1) or SIGTERM mid-epoch
        if trainer.state.status != "interrupted":
            raise
        interrupted = signal.SIGTERM if type(error).__name__ == "SIGTERMException" else signal.SIGINT
    fit_seconds = time.perf_counter() - start
    if trainer.fast_dev_run:
        print("fast_dev_run: no run directory written (no results.json, no checkpoints)")
        return 0
    run_dir = cli.run_dir or Path(trainer.log_dir)  # a collective under DDP: every rank asks
    stopped_because = "interrupted" if interrupted else why_it_stopped(cli, trainer, diverged is not None)
    seed = cli.config.seed_everything
    report_run(trainer, model, cli.progress, cli.checkpoints, run_dir, fit_seconds, stopped_because, seed)
    if not trainer.is_global_zero:
        return 0
    if diverged is not None:
        checkpoints = run_dir / "checkpoints"
        kept = [f"{what} kept: {checkpoints / name}" for what, name in LAST_AND_BEST if (checkpoints / name).exists()]
        print(f"error: {diverged}; {'; '.join(kept) or 'no checkpoint had been written yet'}", file=sys.stderr)
        return 1
    if stopped_because == "interrupted":
        signum = interrupted or cli.checkpoints.signal
        print(
            f"Interrupted ({signal.Signals(signum).name}) after epoch {trainer.current_epoch}: "
            f"{run_dir / 'checkpoints' / 'last.ckpt'} saved; continue with: {continue_command(args)}",
            file=sys.stderr,
        )
        return EXIT_STATUS[signum]
    return 0


def why_it_stopped(cli: "LinearCLI", trainer: L.Trainer, diverged: bool) -> str:
    """Why training ended: converged, val_plateau, max_epochs, max_time, interrupted or diverged."""
    if diverged:
        return "diverged"
    if cli.checkpoints is not None and cli.checkpoints.signal is not None:
        return "interrupted"
    if cli.loss_watch.converged_epoch is not None:
        return "converged"
    if cli.early_stopping is not None and cli.early_stopping.stopped_epoch > 0:
        return "val_plateau"
    if cli.config.trainer.max_time is not None and trainer.current_epoch < (trainer.max_epochs or 0):
        return "max_time"
    return "max_epochs"
