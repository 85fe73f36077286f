"""Predict with a trained checkpoint: python scripts/predict.py --ckpt_path last --x "[1, 1, 1]"  (see --help)."""

import sys

from linear_pl.runner.predict import predict_main

if __name__ == "__main__":
    sys.exit(predict_main())
