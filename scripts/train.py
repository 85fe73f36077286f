"""Train linear_pl's model: python scripts/train.py [--preset NAME] [--flags...]  (see --help)."""

import sys

from linear_pl.cli import cli_main

if __name__ == "__main__":
    sys.exit(cli_main())
