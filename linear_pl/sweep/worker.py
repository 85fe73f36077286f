"""A worker: asks the study for trials and runs them in this process, until the study holds its count.

Any number of workers, in this process, in others, on other machines, share one study through its
storage: Optuna numbers the trials, and each worker counts the whole study's trials before it asks for one.
"""

import time
from pathlib import Path

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, GridSampler, RandomSampler, TPESampler
from optuna.trial import FrozenTrial, TrialState

from linear_pl.runner.errors import UsageError
from linear_pl.runner.run import EXIT_STATUS
from linear_pl.sweep.space import plural, shown
from linear_pl.sweep.trial import Outcome, StopRequest, run_trial


def ran(trial: FrozenTrial) -> bool:
    """Whether a trial ran or is running: not one waiting to run (an interrupted trial's params, queued),
    nor one asked for after the count was reached (closed unrun)."""
    return trial.state != TrialState.WAITING and not trial.user_attrs.get("surplus")


def counts(trial: FrozenTrial) -> bool:
    """Whether a trial counts toward ``--n_trials``: all that ran or are running, except one a signal
    interrupted (its params run again)."""
    return ran(trial) and not trial.user_attrs.get("interrupted")


def requeue(study: optuna.Study, trial: optuna.Trial) -> None:
    """Mark an interrupted trial, and queue its params: the study's next ask takes them."""
    trial.set_user_attr("interrupted", True)
    study.enqueue_trial(trial.params, user_attrs={"rerun_of": trial.number})


def counted(study: optuna.Study, below: int | None = None) -> int:
    """How many of the study's trials (numbered below ``below``, if given) count toward ``--n_trials``."""
    trials = study.get_trials(deepcopy=False)
    return sum(counts(t) for t in trials if below is None or t.number < below)


class Grid(GridSampler):
    """Optuna's grid sampler, which stops the study once every point is taken, by ``study.stop()``: that
    works only inside ``study.optimize``. The worker stops at ``--n_trials`` (at most the grid's size) itself."""

    def after_trial(self, *args, **kwargs) -> None:
        pass


def sampler_for(kind: str, space: dict[str, BaseDistribution], seed: int, position: int) -> BaseSampler:
    """The sampler for the trial at ``position`` in the study: TPE, random, or a grid over categorical
    choices, seeded from ``--seed``.

    TPE and random mix in the trial's place: a fixed seed alone would have every worker draw the same
    params, and with the place mixed in one worker's sweep is still reproducible. constant_liar: TPE
    takes running trials as poor, so that workers sampling at once do not all pick the same point.
    The grid keeps one seed, its order of points: it takes a point no trial has taken yet.
    """
    if kind == "grid":
        return Grid({key: list(d.choices) for key, d in space.items()}, seed=seed)
    seed = seed * 1_000_003 + position
    return RandomSampler(seed=seed) if kind == "random" else TPESampler(seed=seed, constant_liar=True)


def work(
    study: optuna.Study,
    space: dict[str, BaseDistribution],
    base_args: list[str],
    monitor: str,
    n_trials: int,
    study_dir: Path,
    seed: int,
    stop: StopRequest,
    sampler: str = "tpe",
) -> int:
    """Run trials until the study counts ``n_trials`` or a signal stops it; the exit status: 0, or 130/143
    on a signal. A UsageError when no trial can work: the monitored metric is never logged."""
    while stop.signum is None and counted(study) < n_trials:
        study.sampler = sampler_for(sampler, space, seed, len(study.get_trials(deepcopy=False)))
        trial = study.ask(space)
        if counted(study, below=trial.number) >= n_trials:  # another worker asked for the last one just now
            trial.set_user_attr("surplus", True)
            study.tell(trial, state=TrialState.FAIL)
            break
        run_dir = study_dir / f"trial_{trial.number}"
        start = time.perf_counter()
        try:
            outcome = run_trial(trial, base_args, monitor, run_dir, stop)
        except KeyboardInterrupt:  # a second signal, outside the trial's training: recorded, then stop now
            requeue(study, trial)
            study.tell(trial, state=TrialState.FAIL)
            raise
        seconds = time.perf_counter() - start
        for key, value in {"run_dir": str(run_dir), "epochs": outcome.epochs, "seconds": round(seconds, 2)}.items():
            trial.set_user_attr(key, value)
        if outcome.reason is not None:
            trial.set_user_attr("reason", outcome.reason)
        if outcome.status in EXIT_STATUS.values():
            requeue(study, trial)
        study.tell(trial, outcome.value, state=outcome.state)
        print(trial_line(trial.number, trial.params, outcome, monitor, seconds), flush=True)
        if outcome.status in EXIT_STATUS.values():
            return outcome.status
        if outcome.status == 2:  # the run's own check, the same for every trial: the metric is never logged
            raise UsageError(outcome.reason)
    return EXIT_STATUS[stop.signum] if stop.signum is not None else 0


def trial_line(number: int, params: dict, outcome: Outcome, monitor: str, seconds: float) -> str:
    """``Trial 3  model.lr=0.0123  model.hidden_size=64  val/loss 2.316 (100 epochs)  6.1 s``."""
    values = "  ".join(f"{key}={shown(value)}" for key, value in params.items())
    epochs = "no epoch" if outcome.epochs is None else plural(outcome.epochs, "epoch")
    if outcome.state == TrialState.COMPLETE:
        result = f"{monitor} {outcome.value:.4g} ({epochs})"
    elif outcome.state == TrialState.PRUNED:
        result = f"pruned ({epochs})"
    elif outcome.status in EXIT_STATUS.values():
        result = f"interrupted ({epochs}); not counted, its params run first when the study continues"
    else:
        result = f"failed: {outcome.reason}"
    return f"Trial {number:>3}  {values}  {result}  {seconds:.1f} s"
