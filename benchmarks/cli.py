"""``python -m benchmarks [flags]`` (``make benchmark ARGS="..."``): the flags checked (benchmarks/flags.py), then
the chosen sections run, one after the other; their tables printed, and with ``--json FILE`` written as JSON,
with ``--write PAGE`` into the page's blocks (benchmarks/page.py)."""

import argparse
import contextlib
import importlib
import json
import logging
import os
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

from benchmarks.flags import parse_flags
from benchmarks.page import write_page
from linear_pl.runner.errors import UsageError


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; a bad flag is one line and exit 2, before Lightning is imported."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parse_flags(argv)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    report = run(args)
    sections = report_lines(report)
    print("\n\n".join("\n".join(lines) for lines in [header(report), *sections.values()]))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if args.write is not None:
        from linear_pl.runner.flags import without_flag  # noqa: PLC0415 -- it imports Lightning

        command = shlex.join(["python", "-m", "benchmarks", *without_flag(without_flag(argv, "--json"), "--write")])
        write_page(
            args.write, {name: [f"$ {command}", *header(report), "", *lines] for name, lines in sections.items()}
        )
    return 0


def run(args: argparse.Namespace) -> dict:
    """The sections' measurements, and the machine's description and threads."""
    import torch  # noqa: PLC0415 -- Lightning and torch only once the flags are good

    from benchmarks.measure import WORKLOADS, Workload, machine  # noqa: PLC0415
    from linear_pl.runner.noise import silence_known_noise  # noqa: PLC0415

    silence_known_noise()
    if args.one_thread:  # this process, and every command it starts (they inherit the variable)
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)
    omp = os.environ.get("OMP_NUM_THREADS")
    report: dict = {
        "machine": machine(),
        "threads": torch.get_num_threads(),
        "threads_from": f"OMP_NUM_THREADS={omp}" if omp else "the machine's default",
    }
    chosen = [Workload("custom", *args.size)] if args.size else []
    chosen += [WORKLOADS[args.workload]] if args.workload else []
    measure = {
        "answer": lambda section: section.measure(args.seeds, args.train_flags.split(), args.repeats),
        "floor": lambda section: [
            section.measure(w, args.accelerator, args.repeats) for w in (chosen or WORKLOADS.values())
        ],
        "classifier": lambda section: section.measure(args.epochs, args.accelerator, args.repeats),
        "scale": lambda section: [section.measure(w, args.repeats) for w in (chosen or [WORKLOADS["large"]])],
        "files": lambda section: section.measure(args.file_rows),
        "sweep": lambda section: section.measure(args.sweep_trials, args.sweep_epochs, args.sweep_seed),
        "larger": lambda section: section.measure(args.larger_size, args.every_n_steps, args.accelerator, args.repeats),
        "serving": lambda section: section.measure(args.serve_seconds),
    }
    with lightning_quiet():
        for name in args.sections:  # each section's module imported when it runs: classifier's needs scikit-learn
            report[name] = measure[name](importlib.import_module(f"benchmarks.{name}"))
    return report


@contextlib.contextmanager
def lightning_quiet() -> Iterator[None]:
    """Lightning's "GPU available: ..." lines, one set per Trainer, left out of the tables."""
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def header(report: dict) -> list[str]:
    return [f"machine: {report['machine']}", f"threads: {report['threads']} ({report['threads_from']})"]


def report_lines(report: dict) -> dict[str, list[str]]:
    """Each measured section's printed lines."""
    return {
        name: importlib.import_module(f"benchmarks.{name}").lines(report[name])
        for name in ("answer", "floor", "classifier", "files", "scale", "sweep", "larger", "serving")
        if name in report
    }
