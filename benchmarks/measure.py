"""What the sections share: the repository's scripts, a whole command timed in a process of its own with its
peak memory, the workloads of floor and scale, and the machine's description."""

import contextlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch

from benchmarks.flags import WORKLOAD_SIZES
from linear_pl.regression.data import TUTORIAL_WEIGHTS

GIB = 1 << 30
REPO = Path(__file__).resolve().parent.parent
TRAIN = [sys.executable, str(REPO / "scripts" / "train.py")]


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"torch {torch.__version__}, lightning {L.__version__}"
    )


@dataclass
class Workload:
    name: str
    num_samples: int
    num_features: int
    batch_size: int
    epochs: int

    @property
    def weights(self) -> list[float]:
        return [TUTORIAL_WEIGHTS[i % len(TUTORIAL_WEIGHTS)] for i in range(self.num_features)]

    def flags(self, lr: float) -> list[str]:
        """scripts/train.py's flags for this workload (noise keeps it from stopping early as converged)."""
        return [
            "--true_weights", json.dumps(self.weights), "--num_samples", str(self.num_samples),
            "--batch_size", str(self.batch_size), "--max_epochs", str(self.epochs), "--noise_std", "1.0",
            "--lr", repr(lr), "--precondition", "none", "--patience", "null", "--seed", "0",
        ]  # fmt: skip


WORKLOADS = {name: Workload(name, *size) for name, size in WORKLOAD_SIZES.items()}


def peak_rss_reset() -> None:
    """Reset the process's peak-RSS mark (Linux only; elsewhere the peak covers the whole run)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_rss_bytes() -> int:
    """The process's peak resident memory since the last reset, in bytes (Linux)."""
    return int(re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024


# Runs a script and, at exit, writes its own peak RSS (VmHWM, kB) to the file named by the variable: the
# child's rusage would count the pages it shared with this (large) process between fork and exec.
_MEASURED = """import atexit, os, re, runpy, sys
def _peak():
    with open(os.environ["LINEAR_PL_PEAK_RSS"], "w") as f:
        f.write(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
atexit.register(_peak)
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(sys.argv[0]))
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_command(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one Python script's whole command, in its own process, with
    ``env`` over this process's environment."""
    with tempfile.NamedTemporaryFile() as peak:
        env = {**os.environ, **(env or {}), "LINEAR_PL_PEAK_RSS": peak.name}
        start = time.perf_counter()
        proc = subprocess.run([command[0], "-c", _MEASURED, *command[1:]], cwd=cwd, env=env, capture_output=True)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited with status {proc.returncode}: {proc.stderr[-500:]!r}")
        return seconds, int(Path(peak.name).read_text()) * 1024
