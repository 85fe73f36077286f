"""The benchmark's flags, checked before Lightning (4-6 s) is imported, so that a bad one is refused at once:
one line on stderr, exit status 2. The sections' sizes are here, beside the flags that change them."""

import argparse
from pathlib import Path

from benchmarks.page import check_page
from linear_pl.runner.errors import OneLineArgumentParser, UsageError

SECTIONS = ["answer", "floor", "classifier", "scale", "files", "sweep", "larger", "serving"]
# The workloads of floor and scale: N, d, batch, epochs (benchmarks.measure.WORKLOADS).
WORKLOAD_SIZES = {"seed": (10, 7, 1, 200), "medium": (100_000, 64, 256, 5), "large": (2_000_000, 256, 65536, 10)}
CLASSIFIER_EPOCHS = 20
SMALL_ROWS = 1000  # files: the small table's rows, the command's cost without the load
SWEEP_TRIALS, SWEEP_EPOCHS = 30, 60  # sweep: why these, beside benchmarks.sweep.SWEEP_PRESET
# larger: an MLP's width and hidden layers, the batch and the steps (4096 x 3: 50M parameters, a 576 MiB
# checkpoint with Adam's state); Lightning's ModelCheckpoint saves every this many steps beside it.
LARGER_SIZE, EVERY_N_STEPS = "4096,3,16,64", 16
SERVE_SECONDS = 3.0  # serving: each cell's load, after a warm-up


def parse_size(text: str) -> tuple[int, int, int, int]:
    """``--size N,d,batch,epochs``: the four integers of a custom workload."""
    try:
        n, d, b, e = (int(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"--size {text}: expected N,d,batch,epochs (four integers)") from None
    if min(n, d, b, e) < 1 or n < d:
        raise UsageError(f"--size {text}: every value must be >= 1, and N >= d")
    return n, d, b, e


def parse_larger(text: str) -> dict[str, int]:
    """``--larger_size WIDTH,LAYERS,BATCH,STEPS``: the larger section's model and run."""
    try:
        width, layers, batch, steps = (int(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"--larger_size {text}: expected WIDTH,LAYERS,BATCH,STEPS (four integers)") from None
    if min(width, layers, batch, steps) < 1:
        raise UsageError(f"--larger_size {text}: every value must be >= 1")
    return {"width": width, "layers": layers, "batch": batch, "steps": steps}


def parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="python -m benchmarks",
        description="How fast is linear_pl? The answer, Lightning's floor, a classifier, a plain script's pace, "
        "large files, sweeps, a larger model, a server under load.",
    )
    parser.add_argument("--section", choices=SECTIONS, help="run one section (default: all)")
    parser.add_argument("--workload", choices=sorted(WORKLOAD_SIZES), help="floor and scale on one workload")
    parser.add_argument("--size", help="a custom workload for floor and scale: N,d,batch,epochs")
    parser.add_argument("--seeds", type=int, default=10, help="answer: data seeds 0..N-1")
    parser.add_argument("--train_flags", default="", help="answer: extra flags for scripts/train.py")
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="floor, classifier, scale, larger: rounds per workload, the best time counts; "
        "answer: runs of tutorial1.py, the median counts",
    )
    parser.add_argument("--epochs", type=int, default=CLASSIFIER_EPOCHS, help="classifier: epochs of each fit")
    parser.add_argument("--file_rows", type=int, default=1_000_000, help="files: rows of the generated table")
    parser.add_argument("--sweep_trials", type=int, default=SWEEP_TRIALS, help="sweep: trials of each study")
    parser.add_argument("--sweep_epochs", type=int, default=SWEEP_EPOCHS, help="sweep: --max_epochs of each trial")
    parser.add_argument("--sweep_seed", type=int, default=0, help="sweep: --seed of every study (data, weights, TPE)")
    parser.add_argument("--larger_size", default=LARGER_SIZE, help="larger: the MLP's WIDTH,LAYERS,BATCH,STEPS")
    parser.add_argument(
        "--every_n_steps", type=int, default=EVERY_N_STEPS, help="larger: ModelCheckpoint's every_n_train_steps"
    )
    parser.add_argument("--serve_seconds", type=float, default=SERVE_SECONDS, help="serving: seconds of load a cell")
    parser.add_argument(
        "--accelerator", default="auto", help="floor, classifier, larger: cpu, gpu or auto (one device)"
    )
    parser.add_argument(
        "--one_thread",
        action="store_true",
        help="run every command, and this process, on one thread (OMP_NUM_THREADS=1); default: the machine's own, "
        "as a user runs them",
    )
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--write", type=Path, metavar="PAGE", help="replace the sections' figures in PAGE (docs/benchmarks.md)"
    )
    return parser


def parse_flags(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags, checked (:class:`UsageError` for a bad one); ``size`` is parse_size's four integers or None,
    ``larger_size`` parse_larger's dict, ``sections`` the sections to run."""
    args = parser().parse_args(argv)
    for flag in ("repeats", "seeds", "epochs", "sweep_trials", "sweep_epochs", "every_n_steps"):
        if getattr(args, flag) < 1:
            raise UsageError(f"--{flag} {getattr(args, flag)}: must be >= 1")
    if args.serve_seconds <= 0:
        raise UsageError(f"--serve_seconds {args.serve_seconds}: must be > 0")
    if args.file_rows <= SMALL_ROWS:
        raise UsageError(f"--file_rows {args.file_rows}: must be > {SMALL_ROWS}")
    args.size = parse_size(args.size) if args.size else None
    args.larger_size = parse_larger(args.larger_size)
    args.sections = [args.section] if args.section else SECTIONS
    if args.write is not None:
        check_page(args.write, args.sections)
    return args
