"""Search hyperparameters: python scripts/sweep.py --space FILE [--n_trials N] [train.py's flags...] (see --help)."""

import sys

from linear_pl.sweep import main

if __name__ == "__main__":
    sys.exit(main())
