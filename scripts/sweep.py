"""Search hyperparameters: python scripts/sweep.py --space FILE [--n_trials N] [train.py's flags...] (see --help)."""

from linear_pl.runner.process_exit import exit_now
from linear_pl.sweep import main

if __name__ == "__main__":
    exit_now(main())
