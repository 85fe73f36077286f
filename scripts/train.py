"""Train a model: python scripts/train.py [fit|validate|test|predict] [--flags...]  (see --help)."""

import gc
import sys

from linear_pl.runner.cli import cli_main

if __name__ == "__main__":
    status = cli_main()
    # Python's exit as ever (threads joined, atexit handlers, files flushed and closed), less its last garbage
    # collections over every object the imports made (Lightning's thousands of modules): freeze() moves them
    # out of the collector's sight. A collection there frees nothing a finished command still needs.
    gc.freeze()
    sys.exit(status)
