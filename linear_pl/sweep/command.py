"""The sweep command: ``python scripts/sweep.py --space FILE [--n_trials N] [--study NAME] [--storage URL]
[--n_jobs K] [--pruner median|hyperband|none] [train.py's flags]``.

train.py's flags are every trial's base configuration; the space's params go after them. Everything is
checked before any trial runs. With ``--n_jobs K`` this process starts K workers, each this command with
``--worker``, and waits; a signal is passed on to them once.
"""

import argparse
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import optuna
from lightning.pytorch import Trainer
from optuna.distributions import CategoricalDistribution, distribution_to_json
from optuna.trial import TrialState

from linear_pl.runner.cli import RunCLI, parse_flags
from linear_pl.runner.errors import UsageError
from linear_pl.runner.flags import importable_from_cwd, init_parameters, without_flag
from linear_pl.runner.internals import one_line
from linear_pl.runner.noise import silence_known_noise
from linear_pl.runner.run import EXIT_STATUS
from linear_pl.runner.run_dir import how_started
from linear_pl.sweep.flags import STORAGE_ENV, parse_sweep_flags
from linear_pl.sweep.outputs import (
    best_table,
    draw_plots,
    kind_of,
    listed,
    ranked,
    write_best_config,
    write_trials_csv,
)
from linear_pl.sweep.space import as_flags, check_keys, ends, load_space, plural
from linear_pl.sweep.storage import (
    describe,
    masked,
    open_storage,
    quiet_optuna,
    storage_url,
)
from linear_pl.sweep.trial import StopRequest
from linear_pl.sweep.worker import counted, resumed_elsewhere, work


def sweep_main(argv: list[str] | None = None) -> int:
    """Run the sweep; returns the exit status: 0, 2 bad input, 130/143 interrupted (the study is kept)."""
    silence_known_noise()
    quiet_optuna()
    importable_from_cwd()
    argv = sys.argv[1:] if argv is None else list(argv)
    url = None
    try:
        options, base_args = parse_sweep_flags(argv)
        url = storage_url(options.storage)
        return _sweep(options, base_args, url, argv)
    except UsageError as error:
        print(f"error: {masked(one_line(str(error)), url)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C: stopped at once, the running trial recorded
        say_interrupted(argv, url)
        return EXIT_STATUS[signal.SIGINT]


def _sweep(options: argparse.Namespace, base_args: list[str], url: str | None, argv: list[str]) -> int:
    space = load_space(options.space)
    if options.sampler == "grid" and not all(isinstance(d, CategoricalDistribution) for d in space.values()):
        raise UsageError(f"--sampler grid: every key of --space {options.space} must be categorical (the grid)")
    base, base_args = check_base(base_args)
    check_space(options.space, space, base, base_args)
    config = base.config
    name = options.study or options.space.stem
    study_dir = Path(config.trainer.default_root_dir or ".") / "sweeps" / name
    if options.sampler == "grid":  # every point once
        options.n_trials = min(options.n_trials, math.prod(len(d.choices) for d in space.values()))
    pruner = make_pruner(options.pruner, options.prune_after)
    study = open_study(name, url, study_dir, space, config.monitor, config.mode, pruner, options.heartbeat)
    if not options.worker:
        after = f" after {plural(options.prune_after, 'epoch')}" if options.prune_after else ""
        pruning = {"median": f"median pruner{after}", "hyperband": "hyperband pruner", "none": "no pruner"}
        print(
            f"Study {name!r}: {plural(options.n_trials, 'trial')} of {config.monitor} ({config.mode}), "
            f"{counted(study.get_trials(deepcopy=False))} done; {options.sampler} sampler seeded by --seed "
            f"{config.seed_everything}, "
            f"{pruning[options.pruner]}; kept in {describe(url, study_dir)}",
            flush=True,
        )
    if options.worker or options.n_jobs == 1:
        status = run_worker(study, space, base_args, config, options, study_dir)
    else:
        status = run_workers(argv, options.n_jobs, url)
    if options.worker:
        return status
    report(study, space, base_args, config.monitor, study_dir)
    if status in EXIT_STATUS.values():
        say_interrupted(argv, url)
    return status


def check_base(base_args: list[str]) -> tuple[RunCLI, list[str]]:
    """The base flags, parsed as train.py parses them (nothing built), and the flags every trial takes:
    one line for any the run refuses, and for more than one device.

    A trial runs in the worker's process. Under DDP, Lightning would start the other ranks by running
    this process's command line again -- the sweep itself -- so a trial has one device (``auto`` is 1).
    """
    base = parse_flags(base_args)
    devices, strategy = base.config.trainer.devices, str(base.config.trainer.strategy)
    one = (
        devices in (1, "1") or (isinstance(devices, list) and len(devices) == 1) or re.fullmatch(r"\d+,", f"{devices}")
    )
    if not (one or devices == "auto") or "ddp" in strategy or "fsdp" in strategy or "deepspeed" in strategy:
        raise UsageError(
            f"--devices {devices} --strategy {strategy}: a sweep runs each trial on one device, in its worker's "
            "process; --n_jobs runs trials side by side"
        )
    return base, base_args + (["--trainer.devices=1"] if devices == "auto" else [])


def check_space(path: Path, space: dict, base: RunCLI, base_args: list[str]) -> None:
    """Every key is an argument of the run's classes, and the run accepts both ends of every range and
    every choice (each parsed as train.py parses it, nothing built)."""
    takes = {group: set(init_parameters(cls)) if cls else set() for group, cls in base.classes.items()}
    takes["trainer"] = init_parameters(Trainer)
    # LightningCLI's --optimizer/--lr_scheduler CLASS: their keys are checked by parsing, below.
    takes |= {group: set() for group in ("optimizer", "lr_scheduler") if base.config.get(group) is not None}
    check_keys(path, space, takes)
    for key, distribution in space.items():
        for value in ends(distribution):
            try:
                parse_flags([*base_args, *as_flags({key: value})])
            except UsageError as error:
                raise UsageError(f"--space {path}: {key} {value}: {error}") from None


def make_pruner(name: str, prune_after: int) -> optuna.pruners.BasePruner:
    """Optuna's median pruner, as Optuna sets it (judging a trial once 5 are complete, from its first
    validation on), but for ``--prune_after``: the epochs a trial runs before it may be judged, where the
    metric early in a run says little of its end. On the MLP's sine target, 30 TPE trials of 60 epochs
    (docs/benchmarks.md): from the first validation, pruning saved 37% and 44% of the trial-epochs (seeds 0
    and 1) and found 1.02x and 0.91x the best of a 30-point grid; after 20 epochs, 16% and 26%, 0.94x and 0.91x."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=prune_after)
    return optuna.pruners.HyperbandPruner() if name == "hyperband" else optuna.pruners.NopPruner()


def open_study(
    name: str,
    url: str | None,
    study_dir: Path,
    space: dict,
    monitor: str,
    mode: str,
    pruner: optuna.pruners.BasePruner,
    heartbeat: int,
) -> optuna.Study:
    """The study, created or continued; one line if it exists with another space or direction, or if its
    directory holds trials of an earlier study of the same name."""
    storage = open_storage(url, study_dir, heartbeat)
    trial_dirs = sorted(study_dir.glob("trial_*"))  # listed before the study's trials are read: see below
    direction = "minimize" if mode == "min" else "maximize"
    study = optuna.create_study(
        study_name=name, storage=storage, direction=direction, pruner=pruner, load_if_exists=True
    )
    if study.direction.name.lower() != direction:
        raise UsageError(
            f"--study {name}: it {study.direction.name.lower()}s, --mode {mode} the opposite; give a new --study NAME"
        )
    described = {key: json.loads(distribution_to_json(d)) for key, d in space.items()}
    known = study.user_attrs.get("space")
    # A study none of whose trials has a value yet (its metric was never logged, say) takes the new ones.
    valued = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    if known is None or not valued:
        study.set_user_attr("space", described)
        study.set_user_attr("monitor", monitor)
    elif known != described or study.user_attrs.get("monitor") != monitor:
        raise UsageError(
            f"--study {name}: it searches another space or metric ({', '.join(known)}; "
            f"{study.user_attrs.get('monitor')}); give a new --study NAME"
        )
    # A trial's directory is made after its trial is in the study, so one not in it is left from another study.
    numbers = {t.number for t in study.get_trials(deepcopy=False)}
    leftover = [d for d in trial_dirs if d.name.removeprefix("trial_").isdigit() and int(d.name[6:]) not in numbers]
    if leftover:
        raise UsageError(f"{study_dir}: holds {leftover[0].name}, not a trial of study {name!r}; give another --study")
    study_dir.mkdir(parents=True, exist_ok=True)
    return study


def run_worker(
    study: optuna.Study, space: dict, base_args: list[str], config, options: argparse.Namespace, study_dir: Path
) -> int:
    """Run trials in this process; the first SIGINT/SIGTERM ends the running trial cleanly."""
    stop = StopRequest()
    previous = {signum: signal.signal(signum, stop) for signum in EXIT_STATUS}
    seed = config.seed_everything
    try:
        return work(
            study, space, base_args, config.monitor, options.n_trials, study_dir, seed, stop, options.sampler,
            options.heartbeat,
        )  # fmt: skip
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_workers(argv: list[str], n_jobs: int, url: str | None) -> int:
    """Start ``n_jobs`` worker processes and wait for them. They have sessions of their own, so that a
    terminal's Ctrl-C reaches them once, from here; the storage URL goes by environment, not command line."""
    command = [sys.executable, "-m", "linear_pl", "sweep", *without_flag(argv, "--storage"), "--worker"]
    environment = {**os.environ, **({STORAGE_ENV: url} if url else {})}
    # The cores shared out: K workers of torch's default thread count each would contend for them (on
    # this 2-core machine, 2 workers ran a trial 8x slower). A thread count the user set is kept.
    environment.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // n_jobs)))
    workers = [subprocess.Popen(command, env=environment, start_new_session=True) for _ in range(n_jobs)]
    received: list[int] = []

    def pass_on(signum: int, frame: object) -> None:
        received.append(signum)
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signum)

    previous = {signum: signal.signal(signum, pass_on) for signum in EXIT_STATUS}
    try:
        statuses = [worker.wait() for worker in workers]
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        return EXIT_STATUS[received[0]]
    return next((status for status in statuses if status != 0), 0)


def say_interrupted(argv: list[str], url: str | None) -> None:
    print(f"Interrupted: the study is kept; continue it with: {rerun_command(argv, url)}", file=sys.stderr)


def rerun_command(argv: list[str], url: str | None) -> str:
    """The sweep's command as it was given, a password masked (give it again, or by $LINEAR_PL_STORAGE, where
    the command line has none). Running it again continues the study, which its storage keeps: unlike a run's
    ``continue_command``, it needs no checkpoint flag."""
    return shlex.join([*how_started("sweep"), *(masked(arg, url) for arg in argv)])


def report(study: optuna.Study, space: dict, base_args: list[str], monitor: str, study_dir: Path) -> None:
    """Write trials.csv, best.yaml and the plots; print the best five and how to rerun the best."""
    keys = list(space)
    write_trials_csv(study, keys, study_dir / "trials.csv")
    trials = listed(study)
    taken_over = resumed_elsewhere(study.get_trials(deepcopy=False))
    kinds = [kind_of(t, taken_over) for t in trials]
    summary = ", ".join(f"{kinds.count(k)} {word}" for k, word in (("COMPLETE", "complete"), ("PRUNED", "pruned"),
                                                                   ("FAIL", "failed")))  # fmt: skip
    for k, word in (("DIVERGED", "diverged"), ("INTERRUPTED", "interrupted"), ("DIED", "whose worker died, resumed"),
                    ("RUNNING", "running")):  # fmt: skip
        summary += f", {kinds.count(k)} {word}" if k in kinds else ""
    best = ranked(study)
    if not best:
        print(f"{plural(len(trials), 'trial')} ({summary}); no best config yet. Trials: {study_dir / 'trials.csv'}")
        return
    print(f"Best {min(5, len(best))} of {plural(len(trials), 'trial')} ({summary}):")
    print(best_table(study, monitor, keys))
    for note in draw_plots(study, study_dir):
        print(note)
    best_path = study_dir / "best.yaml"
    write_best_config(base_args, best[0], best_path)
    print(f"Trials: {study_dir / 'trials.csv'}; plots: {study_dir / 'optimization_history.png'}, param_importances.png")
    print(f"Best config (trial {best[0].number}): {best_path}")
    print(f"Rerun it with: {shlex.join([*how_started(), '--config', str(best_path)])}")
