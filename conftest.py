"""Collects the ```console sessions of README.md and docs/*.md as tests (tests/readme_sessions.py says how
they run), sets each test process to one thread, and orders the files for the two test workers.

This must sit at the top: pytest asks only the conftest.py files above a file to collect it, and
Sybil only parses files under the directory of the file that makes the Sybil object."""

import os

import pytest
import torch
from sybil import Sybil

from tests.readme_sessions import SUITE_ONE_THREAD, ConsoleSessionParser

pytest_collect_file = Sybil(
    parsers=[ConsoleSessionParser()], patterns=["README.md", "docs/*.md"], fixtures=["tmp_path_factory"]
).pytest()

# Two test workers on two cores: each test process on one thread, in-process and in the processes the
# tests start (set OMP_NUM_THREADS to choose). A second thread mostly spins waiting for work while the
# other worker needs the core. The README's sessions run with the user's default (readme_sessions.py).
if "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = os.environ[SUITE_ONE_THREAD] = "1"
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

# The files that take longest, longest first. `--dist loadfile` gives each worker two files, then another
# each time one is done, in collection order (`--no-loadscope-reorder`, from pytest-xdist 3.8: not by how
# many tests a file has); a long file last in line kept one worker busy while the other had nothing left.
LONGEST_FIRST = ("tests/runner/test_long_epochs.py", "tests/runner/test_reliability.py", "tests/runner/test_sweep.py",
                 "docs/example.md", "tests/test_side_by_side.py", "tests/test_sweep_resume.py",
                 "tests/test_new_project.py", "tests/test_recovery.py", "docs/sweeps.md", "docs/runs.md",
                 "tests/test_ddp.py", "tests/runner/test_ddp.py", "tests/test_sweep_postgres.py",
                 "tests/test_serve_examples.py", "tests/runner/test_serve.py", "docs/your_model.md", "README.md",
                 "tests/runner/test_command_line.py", "tests/test_benchmark.py", "tests/runner/test_export.py",
                 "tests/test_export.py", "tests/test_mlp.py")  # fmt: skip


def pytest_collection_modifyitems(config, items):
    if missing := [path for path in LONGEST_FIRST if not (config.rootpath / path).is_file()]:
        raise pytest.UsageError(f"conftest.py's LONGEST_FIRST names files that are not there: {missing}")
    rank = {path: index for index, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: a file's order kept
