"""Predictions of a trained model: rows given on the command line or in a file, or the data's own predict loader.

``--x`` and ``--input`` rows reach the model's ``predict_step`` as a ``DataLoader`` over a ``TensorDataset`` of
them gives them: ``[x]``, the batch a user's ``predict_step`` already unpacks (``x = batch[0]``). The model's
own ``predict_step`` decides what a prediction is: for a classifier, the class.
"""

import math
import sys
from pathlib import Path

import lightning as L
import torch
import yaml
from jsonargparse import Namespace
from torch.utils.data import DataLoader, TensorDataset

from linear_pl.runner.errors import UsageError

# Rows are predicted this many at a time.
ROWS_PER_BATCH = 4096


def read_rows(config: Namespace) -> tuple[str, list]:
    """The input rows as nested Python lists, and the flag they came from (for error messages)."""
    if config.x is not None:
        try:
            rows = yaml.safe_load(config.x)
        except yaml.YAMLError:
            rows = None
        rows = [rows] if isinstance(rows, list) and not any(isinstance(r, list) for r in rows) else rows
        return "--x", rows if isinstance(rows, list) else [[config.x]]
    if config.input == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(config.input).read_text()
        except OSError as error:
            raise UsageError(f"--input {config.input}: cannot read it ({error.strerror})") from None
    return f"--input {config.input}", [line.split(",") for line in text.splitlines() if line.strip()]


def to_tensor(source: str, rows: list, num_features: int | None) -> torch.Tensor:
    """Check every row is num_features finite numbers (as many as the first row's, for a model that does
    not say); one clear message for the first that is not."""
    if num_features is None:
        num_features = len(rows[0]) if rows and isinstance(rows[0], list) else 1
    expected = f"expected rows of {num_features} finite numbers (shape [N, {num_features}])"
    if not rows:
        raise UsageError(f"{source}: no rows; {expected}")
    values = []
    for i, row in enumerate(rows, start=1):
        if not isinstance(row, list) or len(row) != num_features:
            raise UsageError(f"{source}: row {i} has {len(row) if isinstance(row, list) else 1} values; {expected}")
        try:
            numbers = [float(v) for v in row if not isinstance(v, bool)]
        except (TypeError, ValueError):
            numbers = []
        if len(numbers) != num_features or not all(math.isfinite(v) for v in numbers):
            raise UsageError(f"{source}: row {i} is {row}; {expected}")
        values.append(numbers)
    return torch.tensor(values, dtype=torch.float32)


def rows_of(config: Namespace, model: L.LightningModule) -> DataLoader | None:
    """The ``--x`` or ``--input`` rows as a loader (checked against the model's num_features, where it has
    one); None where neither is given and the data's predict_dataloader serves."""
    if config.x is not None and config.input is not None:
        raise UsageError("give one of --x or --input (or neither, to predict over the data's predict_dataloader)")
    if config.x is None and config.input is None:
        return None
    source, rows = read_rows(config)
    x = to_tensor(source, rows, model.hparams.get("num_features"))
    return DataLoader(TensorDataset(x), batch_size=ROWS_PER_BATCH)


def predict_lines(batches: list) -> list[str]:
    """One line per sample: a number, or a sample's numbers separated by commas."""
    lines = []
    for batch in batches:
        for value in torch.as_tensor(batch).cpu().tolist():
            values = value if isinstance(value, list) else [value]
            lines.append(", ".join(f"{v:.8g}" if isinstance(v, float) else str(v) for v in values))
    return lines
