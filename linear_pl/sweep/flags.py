"""The sweep's own flags, checked before Optuna and Lightning are imported (4-6 s here): a bad one is refused
at once, in one line, exit status 2. The train.py flags among them are checked later, as train.py parses them."""

import argparse
from pathlib import Path

from linear_pl.runner.errors import OneLineArgumentParser, UsageError

# A shared database's URL carries its password: from this variable it appears in no command line.
STORAGE_ENV = "LINEAR_PL_STORAGE"
GRACE_BEATS = 3  # heartbeats a trial may miss before it is taken as dead
PRUNERS = ("median", "hyperband", "none")
SAMPLERS = ("tpe", "random", "grid")


def sweep_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="sweep.py",
        allow_abbrev=False,  # the rest are train.py's flags: --n must not be taken for --n_trials
        description="Search hyperparameters with Optuna: each trial is a train.py run with the space's "
        "params over the other flags (train.py --help lists them).",
    )
    parser.add_argument("--space", type=Path, required=True, help="a YAML file: config key -> {type, low, high, ...}")
    parser.add_argument("--n_trials", type=int, default=20, help="trials in the study, counting those already run")
    parser.add_argument("--study", help="the study's name (default: the space file's name)")
    parser.add_argument("--storage", help=f"a database URL or journal file shared by workers (or ${STORAGE_ENV})")
    parser.add_argument("--n_jobs", type=int, default=1, help="worker processes on this machine")
    parser.add_argument("--pruner", choices=PRUNERS, default="median", help="stops hopeless trials early")
    parser.add_argument("--prune_after", type=int, default=0, help="epochs a trial runs before it may be pruned")
    parser.add_argument(
        "--sampler", choices=SAMPLERS, default="tpe", help="TPE, random, or grid (every combination of categoricals)"
    )
    parser.add_argument(
        "--heartbeat",
        type=int,
        default=10,
        help=f"seconds between a running trial's heartbeats; one silent for {GRACE_BEATS} is resumed by a live worker",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # one of --n_jobs' processes
    return parser


def parse_sweep_flags(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The sweep's own options, checked, and the rest (train.py's flags); :class:`UsageError` if bad."""
    options, base_args = sweep_parser().parse_known_args(argv)
    if options.n_trials < 1 or options.n_jobs < 1 or options.prune_after < 0 or options.heartbeat < 1:
        raise UsageError("--n_trials, --n_jobs and --heartbeat must be >= 1, --prune_after >= 0")
    if "--ckpt_path" in base_args or any(arg.startswith("--ckpt_path=") for arg in base_args):
        raise UsageError("--ckpt_path: every trial of a sweep trains from the start")
    return options, base_args
