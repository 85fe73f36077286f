"""A worker: runs the study's trials in this process with Optuna's own loop, ``study.optimize``, until the
study counts ``--n_trials`` and no trial runs anywhere.

Any number of workers, in this process, in others, on other machines, share one study through its
storage: Optuna numbers the trials. Each trial starts with one read of the study's trials, which says
whether the count is already reached (another worker asked for the last one just now: this trial is
closed unrun, a "surplus") and whether this trial is the last (the loop stops after it). Optuna's
``MaxTrialsCallback`` counts trials by state after each; it is not used, because a sweep's count is not
one of states: an interrupted trial, a dead worker's trial that another resumed and a surplus are all
FAIL, and none counts.

A dead worker's trial (``storage.py``: the heartbeat) is found by every live worker, at the start of each
trial (``study.optimize`` does it) and every heartbeat while one runs, and queued again; the next trial
any worker starts is that one, run from the dead trial's last.ckpt. A worker whose study is counted waits
for the trials still running elsewhere, and resumes those whose worker dies meanwhile.
"""

import threading
import time
from pathlib import Path

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler, GridSampler, RandomSampler, TPESampler
from optuna.trial import FrozenTrial, TrialState

from linear_pl.runner.errors import UsageError
from linear_pl.runner.run import EXIT_STATUS
from linear_pl.sweep.flags import GRACE_BEATS
from linear_pl.sweep.space import plural, shown
from linear_pl.sweep.trial import StopRequest, TrialVerdict, run_trial


def ran(trial: FrozenTrial) -> bool:
    """Whether a trial ran or is running: not one waiting to run (an interrupted or dead trial's params,
    queued), nor one asked for after the count was reached (closed unrun)."""
    return trial.state != TrialState.WAITING and not trial.user_attrs.get("surplus")


def continues(trial: FrozenTrial) -> list[int]:
    """The trials this one continues, oldest first: those whose worker died (Optuna's retry history), or
    that a signal interrupted."""
    return list(trial.system_attrs.get("retry_history") or trial.user_attrs.get("continues") or [])


def resumed_elsewhere(trials: list[FrozenTrial]) -> dict[int, int]:
    """Each trial that another continues (its worker died, or a signal interrupted it), to that other."""
    return {dead: t.number for t in trials for dead in continues(t)[-1:]}


def counted(trials: list[FrozenTrial], below: int | None = None) -> int:
    """How many of ``trials`` (numbered below ``below``, if given) count toward ``--n_trials``: all that ran
    or are running, except those another trial continues."""
    taken_over = resumed_elsewhere(trials)
    return sum(
        ran(t) and not t.user_attrs.get("interrupted") and t.number not in taken_over
        for t in trials
        if below is None or t.number < below
    )


def requeue(study: optuna.Study, trial: optuna.Trial, frozen: FrozenTrial) -> None:
    """Mark an interrupted trial, and queue its params: the study's next ask takes them, from its last.ckpt.
    (``frozen``: the trial as read when it started, with what it continued.)"""
    trial.set_user_attr("interrupted", True)
    study.enqueue_trial(trial.params, user_attrs={"continues": [*continues(frozen), trial.number]})


def resume_point(trial: FrozenTrial, study_dir: Path) -> tuple[int | None, Path | None]:
    """The trial this one continues and its last.ckpt: the newest of those it continues that left one."""
    for number in reversed(continues(trial)):
        checkpoint = study_dir / f"trial_{number}" / "checkpoints" / "last.ckpt"
        if checkpoint.is_file():
            return number, checkpoint
    return (continues(trial) or [None])[-1], None


class SeededPerTrial(BaseSampler):
    """TPE or random, seeded from ``--seed`` and the trial's number: a fixed seed alone would have every
    worker draw the same params, and with the number mixed in one worker's sweep is still reproducible.
    constant_liar: TPE takes running trials as poor, so that workers sampling at once do not all pick the
    same point."""

    def __init__(self, kind: str, seed: int) -> None:
        self.kind, self.seed = kind, seed
        self.sampler = self._make(seed)

    def _make(self, seed: int) -> BaseSampler:
        return RandomSampler(seed=seed) if self.kind == "random" else TPESampler(seed=seed, constant_liar=True)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        # Samplers take a seed below 2**32 (numpy's): any --seed, mixed with the number, wraps into that range.
        self.sampler = self._make((self.seed * 1_000_003 + trial.number) % 2**32)
        self.sampler.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        return self.sampler.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self.sampler.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.sampler.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        self.sampler.after_trial(study, trial, state, values)


def make_sampler(kind: str, space: dict[str, BaseDistribution], seed: int) -> BaseSampler:
    """TPE, random, or Optuna's grid over categorical choices (which takes a point no trial has taken, and
    stops the study once all are), seeded from ``--seed``."""
    if kind == "grid":
        return GridSampler({key: list(d.choices) for key, d in space.items()}, seed=seed)
    return SeededPerTrial(kind, seed)


def suggest(trial: optuna.Trial, key: str, distribution: BaseDistribution) -> object:
    """The trial's value of ``key``: sampled, or the queued one of a trial that continues another."""
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(key, distribution.choices)
    kind = trial.suggest_float if isinstance(distribution, FloatDistribution) else trial.suggest_int
    assert isinstance(distribution, FloatDistribution | IntDistribution)
    return kind(key, distribution.low, distribution.high, step=distribution.step, log=distribution.log)


class TrialEnded(Exception):
    """A trial that ends FAIL for a reason of the sweep's own (it printed its line): Optuna records it and goes on."""


class Watch:
    """While a trial runs: every heartbeat, Optuna's ``fail_stale_trials``, so that a dead worker's trial
    is found within a few heartbeats even by a worker in the middle of a long trial."""

    def __init__(self, study: optuna.Study, interval: float) -> None:
        self.study, self.interval, self.done = study, interval, threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self.done.wait(self.interval):
            try:
                optuna.storages.fail_stale_trials(self.study)
            except Exception:  # a storage that does not answer now: the next check, or the next trial's
                pass

    def __enter__(self) -> "Watch":
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.done.set()
        self.thread.join()


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
    heartbeat: int = 10,
) -> int:
    """Run trials until the study counts ``n_trials`` and none runs anywhere, or a signal stops this worker;
    the exit status: 0, or 130/143 on a signal. A UsageError when no trial can work: the monitored metric
    is never logged."""
    study.sampler = make_sampler(sampler, space, seed)
    statuses: list[int] = []

    def objective(trial: optuna.Trial) -> float:
        trials = study.get_trials(deepcopy=False)  # the one read of the study a trial makes
        done = counted(trials, below=trial.number)
        if done >= n_trials or stop.signum is not None:  # another worker asked for the last one just now
            trial.set_user_attr("surplus", True)
            study.stop()
            raise TrialEnded("surplus")
        if done + 1 >= n_trials:
            study.stop()  # this is the last: the loop ends after it
        params = {key: suggest(trial, key, distribution) for key, distribution in space.items()}
        (frozen,) = [t for t in trials if t.number == trial.number]  # asked for before the read: it is there
        resumed_from, checkpoint = resume_point(frozen, study_dir)
        run_dir = study_dir / f"trial_{trial.number}"
        start = time.perf_counter()
        try:
            with Watch(study, heartbeat):
                verdict = run_trial(trial, base_args, monitor, run_dir, stop, checkpoint)
        except KeyboardInterrupt:  # a second signal, outside the trial's training: recorded, then stop now
            requeue(study, trial, frozen)
            raise
        seconds = time.perf_counter() - start
        attrs = {"run_dir": str(run_dir), "epochs": verdict.epochs, "seconds": round(seconds, 2)}
        if verdict.resumed is not None:
            attrs["resumed_from"] = resumed_from
        elif resumed_from is not None:
            attrs["rerun_of"] = resumed_from  # no usable last.ckpt: from the beginning, with its params
        attrs |= {"reason": verdict.reason} if verdict.reason is not None else {}
        attrs |= {"diverged": True} if verdict.diverged else {}
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        print(trial_line(trial.number, params, verdict, monitor, seconds, attrs), flush=True)
        if verdict.status in EXIT_STATUS.values():
            requeue(study, trial, frozen)
            statuses.append(verdict.status)
            study.stop()
            raise TrialEnded("interrupted")
        if verdict.status == 2:  # the run's own check, the same for every trial: the metric is never logged
            raise UsageError(verdict.reason)
        if verdict.state == TrialState.PRUNED:
            raise optuna.TrialPruned(verdict.reason or "pruned")  # Optuna keeps its last reported value
        if verdict.state == TrialState.FAIL:
            raise TrialEnded(verdict.reason)
        return verdict.value

    said = False
    while True:
        study.optimize(objective, catch=(TrialEnded,))
        if stop.signum is not None or statuses:
            return statuses[0] if statuses else EXIT_STATUS[stop.signum]
        trials = study.get_trials(deepcopy=False)
        if counted(trials) < n_trials or any(t.state == TrialState.WAITING for t in trials):
            continue  # a dead worker's trial to resume, or a trial short
        running = [t.number for t in trials if t.state == TrialState.RUNNING]
        if not running:
            return 0
        if not said:
            print(
                f"Waiting for {plural(len(running), 'trial')} running in other workers ({shown(running)}); "
                f"one silent for {GRACE_BEATS * heartbeat} s is resumed here",
                flush=True,
            )
            said = True
        wait_for_others(study, running, stop, heartbeat)
        if stop.signum is not None:
            return EXIT_STATUS[stop.signum]
        optuna.storages.fail_stale_trials(study)  # (its experimental warning: filtered by quiet_optuna)


def wait_for_others(study: optuna.Study, running: list[int], stop: StopRequest, seconds: float) -> None:
    """Sleep ``seconds``, or less: until a signal comes or one of the other workers' ``running`` trials ends.
    The study is read every second (a signal is seen within 0.2 s): this worker's summary follows the last
    trial within a second, not a heartbeat (10 s) later."""
    start = time.monotonic()
    looked = start
    while stop.signum is None and time.monotonic() < start + seconds:
        time.sleep(0.2)
        if time.monotonic() >= looked + 1.0:
            looked = time.monotonic()
            still = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
            if not still.issuperset(running):
                return


def trial_line(number: int, params: dict, verdict: TrialVerdict, monitor: str, seconds: float, attrs: dict) -> str:
    """``Trial 3  model.lr=0.0123  model.hidden_size=64  val/loss 2.316 (100 epochs)  6.1 s``."""
    values = "  ".join(f"{key}={shown(value)}" for key, value in params.items())
    epochs = "no epoch" if verdict.epochs is None else plural(verdict.epochs, "epoch")
    if verdict.diverged:
        result = f"diverged: {verdict.reason}"
    elif verdict.state == TrialState.COMPLETE:
        result = f"{monitor} {verdict.value:.4g} ({epochs})"
    elif verdict.state == TrialState.PRUNED:
        result = f"pruned ({epochs})"
    elif verdict.status in EXIT_STATUS.values():
        result = f"interrupted ({epochs}); not counted, it continues first when the study continues"
    else:
        result = f"failed: {verdict.reason}"
    if "resumed_from" in attrs:
        result += f"; resumed from trial {attrs['resumed_from']}'s last.ckpt"
    elif "rerun_of" in attrs:
        result += f"; trial {attrs['rerun_of']}'s params from the beginning (it left no last.ckpt)"
    return f"Trial {number:>3}  {values}  {result}  {seconds:.1f} s"
