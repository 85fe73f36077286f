"""Hyperparameter sweeps on Optuna: every trial a normal run of the training command, in a worker process.

Needs the ``sweep`` extra: ``pip install -e ".[sweep]"`` (Optuna, optuna-integration, matplotlib).
"""

import sys


def main(argv: list[str] | None = None) -> int:
    """``scripts/sweep.py`` and ``linear-pl sweep``; one line, not a traceback, without the sweep extra."""
    try:
        from linear_pl.sweep.command import sweep_main  # noqa: PLC0415 -- Optuna is an extra
    except ImportError as error:
        if error.name not in ("optuna", "optuna_integration", "matplotlib"):
            raise
        install = 'pip install -e ".[sweep]"'
        print(f"error: sweeps need the sweep extra ({error.name} is missing): {install}", file=sys.stderr)
        return 2
    return sweep_main(argv)
