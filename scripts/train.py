"""Train a model, by default the tutorial's: python scripts/train.py [fit|validate|test] [--flags...] (see --help)."""

import sys

from linear_pl.runner.cli import cli_main

if __name__ == "__main__":
    sys.exit(cli_main())
