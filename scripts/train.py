"""Train a model: python scripts/train.py [fit|validate|test|predict] [--flags...]  (see --help)."""

from linear_pl.runner.cli import cli_main
from linear_pl.runner.process_exit import exit_now

if __name__ == "__main__":
    exit_now(cli_main())  # sys.exit, less 1.2 s of tearing down Lightning's modules
