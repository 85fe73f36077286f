"""One run of a built command: fit (or validate, or test), the report, and the exit status that says how it ended."""

import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import lightning as L

from linear_pl.runner.extras import extras_of
from linear_pl.runner.monitor import MonitorMissing
from linear_pl.runner.results import report_run
from linear_pl.runner.run_dir import continue_command
from linear_pl.runner.watch import TrainingDiverged

if TYPE_CHECKING:
    from linear_pl.runner.cli import LinearCLI

EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}  # the shell's 128 + signal number


def evaluate(cli: "LinearCLI", command: str) -> int:
    """``validate`` or ``test`` ``--ckpt_path ...``: print the checkpoint's metrics; the exit status."""
    if cli.ckpt_path is None:
        print(f"error: {command} needs --ckpt_path best, last or a path", file=sys.stderr)
        return 2
    run = cli.trainer.validate if command == "validate" else cli.trainer.test
    (metrics,) = run(cli.model, cli.datamodule, verbose=False)  # its weights: loaded safely
    shown = "  ".join(f"{k.replace('/', '_')} {float(v):.6g}" for k, v in sorted(metrics.items()))
    print(f"{cli.ckpt_path}: {shown}")
    return 0


def kept_checkpoints(run_dir: Path) -> str:
    """The checkpoints a failed run leaves, named, for its error line."""
    checkpoints = run_dir / "checkpoints"
    named = (("last good checkpoint", "last.ckpt"), ("best checkpoint", "best.ckpt"))
    kept = [f"{what} kept: {checkpoints / name}" for what, name in named if (checkpoints / name).exists()]
    return "; ".join(kept) or "no checkpoint had been written yet"


def fit(cli: "LinearCLI", args: list[str]) -> int:
    """Train, report, and return the exit status: 0, 1 diverged or a write failed, 2 bad input, 130/143 interrupted."""
    trainer, model = cli.trainer, cli.model
    start, diverged, interrupted = time.perf_counter(), None, None
    try:
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
        report_run(
            trainer,
            model,
            cli.progress,
            cli.checkpoints,
            run_dir,
            fit_seconds,
            stopped_because,
            cli.config.seed_everything,
        )
    except MonitorMissing as error:
        print(f"error: {error}; {kept_checkpoints(cli.checkpoints.dirpath.parent)}", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk, a lost mount: what failed, and what is kept
        where = cli.checkpoints.dirpath.parent if cli.checkpoints is not None else None
        kept = "" if where is None else f"; {kept_checkpoints(where)}"
        print(f"error: writing the run's files failed: {error}{kept}", file=sys.stderr)
        return 1
    if not trainer.is_global_zero:
        return 0
    if diverged is not None:
        print(f"error: {diverged}; {kept_checkpoints(run_dir)}", file=sys.stderr)
        return 1
    if stopped_because == "interrupted":
        signum = interrupted or cli.checkpoints.signal
        last = run_dir / "checkpoints" / "last.ckpt"
        # "last" is the newest run's under lightning_logs/: a run in a directory of its caller's (a sweep's
        # trial) names its own.
        checkpoint = "last" if cli.given_run_dir is None else str(last)
        print(
            f"Interrupted ({signal.Signals(signum).name}) {cli.checkpoints.where_stopped(trainer)}: "
            f"{last} saved; continue with: {continue_command(args, checkpoint)}",
            file=sys.stderr,
        )
        return EXIT_STATUS[signum]
    return 0


def why_it_stopped(cli: "LinearCLI", trainer: L.Trainer, diverged: bool) -> str:
    """Why training ended: diverged, interrupted, a model extra's reason (converged), val_plateau or
    train_plateau, max_time or max_epochs."""
    if diverged:
        return "diverged"
    if cli.checkpoints is not None and cli.checkpoints.signal is not None:
        return "interrupted"
    for extra in extras_of(trainer):
        if (reason := extra.stop_reason()) is not None:
            return reason
    if cli.early_stopping is not None and cli.early_stopping.stopped_epoch > 0:
        return "train_plateau" if cli.monitor.on_training else "val_plateau"
    if cli.config.trainer.max_time is not None and trainer.current_epoch < (trainer.max_epochs or 0):
        return "max_time"
    return "max_epochs"
