"""Hyperparameter sweeps on Optuna: every trial a normal run of the training command, in a worker process.

Needs the ``sweep`` extra: ``pip install -e ".[sweep]"`` (Optuna, optuna-integration, matplotlib).
"""

import sys

from linear_pl.runner.errors import UsageError
from linear_pl.sweep.flags import parse_sweep_flags


def main(argv: list[str] | None = None) -> int:
    """``scripts/sweep.py`` and ``linear-pl sweep``: the sweep's own flags checked before Optuna and Lightning
    are imported; one line, not a traceback, for a bad one or without the sweep extra."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parse_sweep_flags(argv)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        from linear_pl.sweep.command import sweep_main  # noqa: PLC0415 -- Optuna is an extra
    except ImportError as error:
        if error.name not in ("optuna", "optuna_integration", "matplotlib"):
            raise
        install = 'pip install -e ".[sweep]"'
        print(f"error: sweeps need the sweep extra ({error.name} is missing): {install}", file=sys.stderr)
        return 2
    return sweep_main(argv)
