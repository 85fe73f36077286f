"""``answer``: the default run over data seeds 0..N-1, with preconditioning and without: the epochs and the time
to recover the weights; and its whole command against ``examples/tutorial1.py``'s."""

import json
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.measure import REPO, TRAIN, run_command


def measure(seeds: int, extra: list[str], repeats: int) -> dict:
    """The default run for each seed, preconditioned and raw; tutorial 1's script for comparison."""
    rows = {}
    for mode in ("auto", "none"):
        for seed in range(seeds):
            with tempfile.TemporaryDirectory() as root:
                flags = ["--seed", str(seed), "--precondition", mode, "--default_root_dir", root, *extra]
                wall, _ = run_command([*TRAIN, *flags], Path(root))
                results = json.loads(next(Path(root).glob("lightning_logs/version_*/results.json")).read_text())
            recovered = results["max_abs_error"] is not None and results["max_abs_error"] <= 0.01
            rows.setdefault(mode, []).append(
                {"seed": seed, "epochs": results["epochs"], "max_abs_error": results["max_abs_error"],
                 "recovered": recovered, "fit_seconds": results["fit_seconds"], "wall_seconds": wall}
            )  # fmt: skip
    with tempfile.TemporaryDirectory() as cwd:
        tutorial = statistics.median(run_command([sys.executable, str(REPO / "examples" / "tutorial1.py")], cwd)[0]
                                     for _ in range(repeats))  # fmt: skip
    ours = statistics.median(row["wall_seconds"] for row in rows["auto"])
    return {"runs": rows, "tutorial1_wall_seconds": tutorial, "wall_ratio": ours / tutorial}


def lines(answer: dict) -> list[str]:
    lines = ["time to the answer (default run, seeds 0..N-1):"]
    for mode, rows in answer["runs"].items():
        epochs = [r["epochs"] for r in rows]
        walls = [r["wall_seconds"] for r in rows]
        fits = [r["fit_seconds"] for r in rows]
        lines.append(
            f"  --precondition {mode:<5} recovered {sum(r['recovered'] for r in rows)}/{len(rows)}; "
            f"epochs {min(epochs)}-{max(epochs)} (median {statistics.median(epochs):g}); "
            f"Trainer.fit {min(fits):.2f}-{max(fits):.2f} s; whole command median {statistics.median(walls):.2f} s"
        )
    lines.append(
        f"  examples/tutorial1.py median {answer['tutorial1_wall_seconds']:.2f} s; "
        f"default run / tutorial1 = {answer['wall_ratio']:.2f} (goal <= 1.5)"
    )
    return lines
