"""Search hyperparameters: python scripts/sweep.py --space FILE [--n_trials N] [train.py's flags...] (see --help)."""

import gc
import sys

from linear_pl.sweep import main

if __name__ == "__main__":
    status = main()
    gc.freeze()  # Python's exit less its last garbage collections: see train.py
    sys.exit(status)
