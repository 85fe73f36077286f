"""``scale``: the whole command, imports and data included, of ``scripts/train.py`` against
``examples/plain_script.py`` on the ``large`` workload: wall time and peak RSS of each process; and the time to
import torch, and Lightning, in a new process."""

import gc
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from benchmarks.measure import GIB, REPO, TRAIN, Workload, run_command


def measure(workload: Workload, repeats: int) -> dict:
    """The whole command of linear_pl and of a plain script, alternating, the best of ``repeats`` each (two
    runs of one command differ by up to 20% here: noise only ever adds time)."""
    lr = 1e-12  # the speed does not depend on it; it keeps both from diverging
    plain = [
        sys.executable, str(REPO / "examples" / "plain_script.py"), "--num_samples", str(workload.num_samples),
        "--num_features", str(workload.num_features), "--batch_size", str(workload.batch_size),
        "--max_epochs", str(workload.epochs), "--lr", repr(lr),
    ]  # fmt: skip
    gc.collect()
    ours_seconds = plain_seconds = float("inf")
    ours_rss = plain_rss = 0
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as root:
            seconds, rss = run_command([*TRAIN, *workload.flags(lr), "--default_root_dir", root], Path(root))
            ours_seconds, ours_rss = min(ours_seconds, seconds), max(ours_rss, rss)
            seconds, rss = run_command(plain, Path(root))
            plain_seconds, plain_rss = min(plain_seconds, seconds), max(plain_rss, rss)
    data_bytes = (workload.num_samples + 10) * (workload.num_features + 1) * 4
    # The part no template on Lightning can avoid, on its own row: importing it, beside torch alone.
    imports = {"torch": import_seconds("torch", repeats), "lightning": import_seconds("lightning", repeats)}
    return {
        "import_seconds": imports, "repeats": repeats,
        **asdict(workload),
        "linear_pl_seconds": ours_seconds, "plain_script_seconds": plain_seconds,
        "plain_over_linear_pl": plain_seconds / ours_seconds,
        "linear_pl_peak_rss_bytes": ours_rss, "plain_script_peak_rss_bytes": plain_rss,
        "data_bytes": data_bytes, "rss_goal_bytes": 1.5 * data_bytes + GIB,
    }  # fmt: skip


def import_seconds(module: str, repeats: int = 3) -> float:
    """Wall seconds of ``python -c "import module"`` in a new process, best of ``repeats``."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def lines(rows: list[dict]) -> list[str]:
    lines = []
    for r in rows:
        lines.append(
            f"whole command, {r['name']} ({r['num_samples']} x {r['num_features']}, {r['epochs']} epochs): "
            f"best of {r['repeats']}: scripts/train.py {r['linear_pl_seconds']:.2f} s, examples/plain_script.py "
            f"{r['plain_script_seconds']:.2f} s, plain/linear_pl {r['plain_over_linear_pl']:.2f} (goal >= 0.8); "
            f"peak RSS {r['linear_pl_peak_rss_bytes'] / GIB:.2f} Gi vs "
            f"{r['plain_script_peak_rss_bytes'] / GIB:.2f} Gi (goal <= {r['rss_goal_bytes'] / GIB:.2f} Gi)"
        )
        imports = r["import_seconds"]
        lines.append(
            f"importing, in a new process: torch {imports['torch']:.2f} s, lightning {imports['lightning']:.2f} s "
            "(torch included): the part of the command no Lightning template avoids"
        )
    return lines
