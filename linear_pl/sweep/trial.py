"""One trial: a normal training run, in this process, in its own directory, with Optuna's pruning callback.

Each trial is the command ``train.py`` with the sweep's base flags and the trial's params after them,
built and run by the same code (``build_run``, ``fit``), so a trial writes what any run writes:
TensorBoard events, hparams, config.yaml, checkpoints, results.json. Its printed output goes to
``train.log`` in its directory; the sweep prints one line a trial instead. A trial that continues one whose
worker died, or one a signal interrupted, runs with ``--ckpt_path`` that trial's last.ckpt.

Every call into the run machinery (``build_run``, ``fit``, the run's errors) is in this file.
"""

import gc
import json
import logging
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import lightning as L
import optuna
from optuna.trial import TrialState
from optuna_integration import PyTorchLightningPruningCallback

from linear_pl.runner.cli import build_run
from linear_pl.runner.errors import UsageError
from linear_pl.runner.extras import RunExtra
from linear_pl.runner.internals import one_line
from linear_pl.runner.run import EXIT_STATUS, fit
from linear_pl.sweep.space import as_flags

LOG_NAME = "train.log"
LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")


class PruneTrial(PyTorchLightningPruningCallback, RunExtra):
    """Optuna's Lightning pruning callback, stopping a hopeless trial the way early stopping does.

    The integration raises ``TrialPruned`` out of ``trainer.fit``; here the trial stops at that
    validation instead, so that it still ends as a run: its checkpoints, its final line, results.json.
    The sweep then tells Optuna it was pruned. It also puts the trial's number and params in results.json.
    """

    def __init__(self, trial: optuna.Trial, monitor: str) -> None:
        super().__init__(trial, monitor)
        self.trial = trial
        self.pruned_at: int | None = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        try:
            super().on_validation_end(trainer, pl_module)
        except optuna.TrialPruned:
            if trainer.max_epochs is not None and trainer.current_epoch + 1 >= trainer.max_epochs:
                return  # its last epoch: the trial ran to its end, and is complete
            self.pruned_at = trainer.current_epoch
            trainer.should_stop = True

    def stop_reason(self) -> str | None:
        return None if self.pruned_at is None else "pruned"

    def summarize(self, trainer: L.Trainer, pl_module: L.LightningModule, results: dict[str, Any]) -> None:
        results["trial"] = self.trial.number
        results["params"] = self.trial.params


@dataclass
class TrialVerdict:
    """How a trial ended in Optuna's terms (its state and value), and for the sweep's line. Not the run's
    ``Outcome``: a trial whose run was refused or raised has none, and a run that ended well may be a pruned
    or failed trial."""

    state: TrialState
    value: float | None = None  # the monitored metric at its best epoch
    epochs: int | None = None
    reason: str | None = None  # a failed or diverged trial's one line
    status: int = 0  # the run's exit status: 130/143 interrupted, 2 the monitored metric never logged
    diverged: bool = False  # the training loss diverged: Optuna is told PRUNED, at its last reported value
    resumed: Path | None = None  # the checkpoint it continued from


def run_trial(
    trial: optuna.Trial, base_args: list[str], monitor: str, run_dir: Path, stop: "StopRequest", resume: Path | None
) -> TrialVerdict:
    """Train with ``base_args`` and the trial's params in ``run_dir`` (created here), from the checkpoint
    ``resume`` if given (an unusable one -- cut short by the kill, say -- is said in train.log, and the
    trial starts from the beginning), and say how it ended."""
    args = [*base_args, *as_flags(trial.params)]
    run_dir.mkdir(parents=True)
    with open(run_dir / LOG_NAME, "w") as log, redirect_stdout(log), redirect_stderr(log), logging_to(log):
        if resume is not None:
            print("train.py", *args, "--ckpt_path", str(resume), flush=True)
            verdict = _train(trial, [*args, "--ckpt_path", str(resume)], monitor, run_dir, stop)
            if verdict.reason is not None and verdict.reason.startswith("--ckpt_path "):
                print(f"{resume} cannot be resumed ({verdict.reason}): the trial starts from the beginning")
                resume = None
        if resume is None:
            print("train.py", *args, flush=True)
            verdict = _train(trial, args, monitor, run_dir, stop)
        verdict.resumed = resume
    if (verdict.state == TrialState.FAIL or verdict.diverged) and verdict.reason is None:
        verdict.reason = _last_error(run_dir)
    gc.collect()  # the trial's model, data and Trainer, before the next one is built
    return verdict


@contextmanager
def logging_to(stream: TextIO) -> Iterator[None]:
    """Lightning's log lines ("GPU available: ...") into ``stream``: its handlers hold the stderr of
    their making, which redirect_stderr does not change."""
    handlers = [h for name in LIGHTNING_LOGGERS for h in logging.getLogger(name).handlers]
    previous = {h: h.stream for h in handlers if type(h) is logging.StreamHandler}  # not a file's, nor pytest's
    for handler in previous:
        handler.setStream(stream)
    try:
        yield
    finally:
        for handler, old in previous.items():
            handler.setStream(old)


def _train(trial: optuna.Trial, args: list[str], monitor: str, run_dir: Path, stop: "StopRequest") -> TrialVerdict:
    pruning = PruneTrial(trial, monitor)
    try:
        run = build_run(args, run_dir=run_dir, callbacks=[pruning])
    except UsageError as error:  # a value this run refuses (its class checks its arguments)
        print(f"error: {one_line(str(error))}")
        return TrialVerdict(TrialState.FAIL, reason=one_line(str(error)))
    except Exception as error:
        return _raised(error)
    if stop.signum is not None:  # asked to stop while the trial was being built
        return TrialVerdict(TrialState.FAIL, reason="interrupted", status=EXIT_STATUS[stop.signum])
    stop.running = run.checkpoints
    try:
        outcome = fit(run)
        if outcome.message:
            print(outcome.message)
        status = outcome.status
    except Exception as error:  # the user's model raised: this trial fails, the sweep goes on
        return _raised(error)
    finally:
        stop.running = None
    results = _read_results(run_dir)
    epochs = results.get("epochs")
    if status in EXIT_STATUS.values():
        return TrialVerdict(TrialState.FAIL, epochs=epochs, reason="interrupted", status=status)
    if results.get("stopped_because") == "diverged":
        return TrialVerdict(TrialState.PRUNED, epochs=epochs, status=status, diverged=True)  # its reason: below
    if status != 0:  # a failed write, the metric never logged: the run printed why
        return TrialVerdict(TrialState.FAIL, epochs=epochs, status=status)
    if pruning.pruned_at is not None:
        return TrialVerdict(TrialState.PRUNED, epochs=epochs)
    if results.get("best_value") is None:
        return TrialVerdict(TrialState.FAIL, epochs=epochs, reason=f"no {monitor} was recorded")
    return TrialVerdict(TrialState.COMPLETE, value=results["best_value"], epochs=epochs)


def _raised(error: Exception) -> TrialVerdict:
    traceback.print_exc()  # into train.log, for the user to debug
    return TrialVerdict(TrialState.FAIL, reason=one_line(f"{type(error).__name__}: {error}"))


def _read_results(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "results.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _last_error(run_dir: Path) -> str:
    """The run's own one-line error, as it printed it."""
    lines = (run_dir / LOG_NAME).read_text().splitlines()
    errors = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
    return errors[-1] if errors else "the run failed (see its train.log)"


class StopRequest:
    """The first SIGINT or SIGTERM: the running trial stops at its epoch's end, and no trial starts after it."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.running = None  # the running trial's RunCheckpoints, which stops it

    def __call__(self, signum: int, frame: object) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt  # a second signal: stop now
        self.signum = signum
        if self.running is not None:
            self.running.signal = signum
