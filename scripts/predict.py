"""Predict with a trained checkpoint: python scripts/predict.py --ckpt_path last --x "[1, 1, 1]"  (see --help).

The short spelling of ``python scripts/train.py predict ...``."""

import gc
import sys

from linear_pl.runner.cli import cli_main

if __name__ == "__main__":
    status = cli_main(["predict", *sys.argv[1:]])
    gc.freeze()  # Python's exit less its last garbage collections: see train.py
    sys.exit(status)
