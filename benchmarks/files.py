"""``files``: a generated table of ``--file_rows`` rows (1M) x 20 features + target as CSV and as Parquet: the
whole command on it minus the same on its first 1,000 rows (the load cost), against polars' own read into a
float32 tensor; the command's peak RSS."""

import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks.flags import SMALL_ROWS
from benchmarks.measure import GIB, TRAIN, run_command

FEATURES = 20
_POLARS_READ = """
import sys, time
import polars as pl, torch
start = time.perf_counter()
read = pl.read_csv if sys.argv[1].endswith(".csv") else pl.read_parquet
read(sys.argv[1]).to_torch(dtype=pl.Float32)
print(time.perf_counter() - start)
"""


def measure(rows: int) -> list[dict]:
    """The whole command on the table, as CSV and as Parquet, against the same on its first 1,000 rows, and
    polars' own read of it into a float32 tensor (imports excluded); the command's peak RSS."""
    import polars as pl  # noqa: PLC0415 -- only this section needs it

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(rows, FEATURES, generator=generator)
    y = x @ torch.randn(FEATURES, generator=generator) + 0.1 * torch.randn(rows, generator=generator)
    table = pl.DataFrame({**{f"x{i}": x[:, i].numpy() for i in range(FEATURES)}, "y": y.numpy()})
    del x, y
    flags = ["--data", "csv", "--data.target_column", "y", "--bias", "--batch_size", "1024", "--max_epochs", "1"]
    results = []
    with tempfile.TemporaryDirectory() as root:
        for kind in ("csv", "parquet"):
            big, small = Path(root) / f"big.{kind}", Path(root) / f"small.{kind}"
            for frame, path in ((table, big), (table.head(SMALL_ROWS), small)):
                frame.write_csv(path) if kind == "csv" else frame.write_parquet(path)
            command = [*TRAIN, *flags, "--default_root_dir", root, "--data.path"]
            big_seconds, big_rss = run_command([*command, str(big)], Path(root))
            small_seconds, _ = run_command([*command, str(small)], Path(root))
            read = subprocess.run([sys.executable, "-c", _POLARS_READ, str(big)], check=True, capture_output=True)
            data_bytes = rows * (FEATURES + 1) * 4
            results.append({
                "kind": kind, "rows": rows, "features": FEATURES, "file_bytes": big.stat().st_size,
                "command_seconds": big_seconds, "small_command_seconds": small_seconds,
                "load_seconds": big_seconds - small_seconds, "polars_read_seconds": float(read.stdout),
                "peak_rss_bytes": big_rss, "data_bytes": data_bytes, "rss_goal_bytes": 2 * data_bytes + 1.5 * GIB,
            })  # fmt: skip
    return results


def lines(rows: list[dict]) -> list[str]:
    lines = [f"{'file':<8} {'rows':>9} {'MB':>6} {'command s':>9} {'1k rows s':>9} {'load s':>7} {'polars s':>8} "
             f"{'load/polars':>11} {'peak RSS':>9} {'RSS goal':>9}"]  # fmt: skip
    for r in rows:
        lines.append(
            f"{r['kind']:<8} {r['rows']:>9} {r['file_bytes'] / 1e6:>6.0f} {r['command_seconds']:>9.2f} "
            f"{r['small_command_seconds']:>9.2f} {r['load_seconds']:>7.2f} {r['polars_read_seconds']:>8.2f} "
            f"{r['load_seconds'] / r['polars_read_seconds']:>11.2f} {r['peak_rss_bytes'] / GIB:>7.2f}Gi "
            f"{r['rss_goal_bytes'] / GIB:>7.2f}Gi"
        )
    lines.append(
        f"(scripts/train.py --data csv --bias --batch_size 1024 --max_epochs 1 on a generated {FEATURES}-feature "
        "table, against the same on its first 1,000 rows; polars' own read into a float32 tensor; goal for CSV: "
        "load/polars <= 3, peak RSS <= 2 x data + 1.5 GiB)"
    )
    return lines
