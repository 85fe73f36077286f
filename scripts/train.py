"""Train a model: python scripts/train.py [fit|validate|test|predict] [--flags...]  (see --help)."""

import sys

from linear_pl.runner.cli import cli_main

if __name__ == "__main__":
    sys.exit(cli_main())
