"""A table file read into tensors: CSV, Parquet or Feather/Arrow IPC, checked so that bad data is one line.

polars reads the file: a columnar reader, about 60 times faster than the csv module on a 1M-row CSV,
which kept a Python object per cell. It is imported only when a file is read. A CSV that polars
reads cleanly (every wanted cell a finite number) is taken as read. Anything else -- a parse error,
an empty cell, NaN, a blank line -- is read again row by row with the csv module, which names the
file, line and column of the first bad cell, or, for what is not an error (blank lines), gives the
table. Parquet and Feather files have no lines: their errors name the column, and the row.
"""

import csv
import math
from pathlib import Path

import torch

from linear_pl.runner.errors import UsageError

COLUMNAR = {".parquet": "parquet", ".feather": "ipc", ".arrow": "ipc", ".ipc": "ipc"}


def read_table(path: str, target: str, features: list[str] | None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """x ``[n, d]`` and y ``[n]`` as float32 (parsed as float64, rounded once), and the feature names; a file that
    cannot be used as training data is a UsageError, one line naming where."""
    if Path(path).suffix.lower() in COLUMNAR:
        return _read_columnar(path, target, features)
    header = _csv_header(path)
    wanted = _wanted_columns(path, header, target, features)
    read = _read_csv_fast(path, [*wanted, target])
    if read is None:  # not clean: the row-by-row reader names the first bad cell, or reads what is fine
        read = _read_csv_by_rows(path, header, [*wanted, target])
    return read[:, :-1].float(), read[:, -1].float(), wanted


def _wanted_columns(path: str, header: list[str], target: str, features: list[str] | None) -> list[str]:
    duplicates = sorted({c for c in header if header.count(c) > 1})
    if duplicates:
        raise UsageError(f"{path}: column {duplicates[0]!r} appears more than once in the header")
    wanted = features or [c for c in header if c != target]
    for column in [target, *wanted]:
        if column not in header:
            raise UsageError(f"{path}: no column {column!r}; the columns are {', '.join(header)}")
    return wanted


def _csv_header(path: str) -> list[str]:
    try:
        with open(path, newline="") as f:
            first = next(csv.reader(f), [])
    except OSError as error:
        raise UsageError(f"{path}: cannot read it ({error.strerror})") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise UsageError(f"{path}: not a CSV text file ({error})") from None
    if not any(cell.strip() for cell in first):
        raise UsageError(f"{path}: empty; expected a header line of column names")
    return [cell.strip() for cell in first]


def _read_csv_fast(path: str, columns: list[str]) -> torch.Tensor | None:
    """The columns as float64, if polars reads every one of their cells as a finite number; else None."""
    import polars as pl  # noqa: PLC0415 -- only when a file is read

    try:
        frame = pl.read_csv(path, columns=columns, schema_overrides=dict.fromkeys(columns, pl.Float64))
    except Exception:  # a ragged row, a non-number, a file polars cannot parse: let the row reader say where
        return None
    frame = frame.select(columns)
    if frame.height == 0 or frame.null_count().sum_horizontal().item() > 0:
        return None
    if not frame.select(pl.all().is_finite().all()).row(0) == (True,) * len(columns):
        return None
    return frame.to_torch(dtype=pl.Float64)


def _read_csv_by_rows(path: str, header: list[str], columns: list[str]) -> torch.Tensor:
    """The columns as float64, row by row with the csv module; the first bad cell named by line and column."""
    name = Path(path).name
    indices = [header.index(c) for c in columns]
    values = []
    try:
        with open(path, newline="") as f:
            rows = csv.reader(f)
            next(rows)  # the header
            for line, row in enumerate(rows, start=2):
                if not any(cell.strip() for cell in row):
                    continue  # a blank line
                if len(row) != len(header):
                    raise UsageError(f"{name} line {line}: {len(row)} cells, but the header has {len(header)}")
                values.append([_number(row[i], name, line, header[i]) for i in indices])
    except (UnicodeDecodeError, csv.Error) as error:
        raise UsageError(f"{path}: not a CSV text file ({error})") from None
    if not values:
        raise UsageError(f"{path}: a header but no data rows")
    return torch.tensor(values, dtype=torch.float64)


def _number(cell: str, name: str, line: int, column: str) -> float:
    where = f"{name} line {line}, column {column!r}"
    if not cell.strip():
        raise UsageError(f"{where}: empty cell; expected a number")
    try:
        value = float(cell)
    except ValueError:
        raise UsageError(f"{where}: {cell.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise UsageError(f"{where}: {cell.strip()!r} is not a finite number")
    return value


def _read_columnar(path: str, target: str, features: list[str] | None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    import polars as pl  # noqa: PLC0415 -- only when a file is read

    kind = COLUMNAR[Path(path).suffix.lower()]
    if not Path(path).is_file():
        raise UsageError(f"{path}: cannot read it (No such file or directory)")
    try:
        schema = pl.read_parquet_schema(path) if kind == "parquet" else pl.read_ipc_schema(path)
    except Exception as error:
        raise UsageError(f"{path}: not a {kind} file ({str(error).splitlines()[0]})") from None
    wanted = _wanted_columns(path, list(schema), target, features)
    columns = [*wanted, target]
    for column in columns:
        if not schema[column].is_numeric():
            raise UsageError(f"{path}: column {column!r} is {schema[column]}, not numbers")
    read = pl.read_parquet if kind == "parquet" else pl.read_ipc
    frame = read(path, columns=columns).select([pl.col(c).cast(pl.Float64) for c in columns])
    if frame.height == 0:
        raise UsageError(f"{path}: no data rows")
    for column in columns:
        values = frame[column]
        if values.null_count():
            row = values.is_null().arg_max()
            raise UsageError(
                f"{path}: column {column!r} has {values.null_count()} empty (null) cells, first at row {row}"
            )
        bad = ~values.is_finite()
        if bad.any():
            row = bad.arg_max()
            raise UsageError(f"{path}: column {column!r}, row {row}: {values[row]} is not a finite number")
    table = frame.to_torch(dtype=pl.Float64)
    return table[:, :-1].float(), table[:, -1].float(), wanted
