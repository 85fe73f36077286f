"""Collects the ```console sessions of README.md and docs/*.md as tests (tests/readme_sessions.py says how
they run), and orders the files for the two test workers.

This must sit at the top: pytest asks only the conftest.py files above a file to collect it, and
Sybil only parses files under the directory of the file that makes the Sybil object."""

import pytest
from sybil import Sybil

from tests.readme_sessions import ConsoleSessionParser

# The example's fixtures, apart from tests/conftest.py, which serves the runner's tests on any model.
pytest_plugins = ["tests.example_fixtures"]

pytest_collect_file = Sybil(
    parsers=[ConsoleSessionParser()], patterns=["README.md", "docs/*.md"], fixtures=["tmp_path_factory"]
).pytest()

# The files that take longest, longest first (measured: docs/tests.md). `--dist loadfile` gives each worker
# two files, then another each time one is done, in collection order (`--no-loadscope-reorder`, from
# pytest-xdist 3.8: not by how many tests a file has); last in line, docs/sweeps.md's 40 s sweep kept one
# worker busy while the other had nothing left.
LONGEST_FIRST = ("tests/test_benchmark.py", "tests/test_run_sweep.py", "docs/sweeps.md", "tests/test_new_project.py",
                 "tests/test_long_epochs.py", "tests/test_side_by_side.py", "tests/test_sweep_postgres.py")  # fmt: skip


def pytest_collection_modifyitems(config, items):
    if missing := [path for path in LONGEST_FIRST if not (config.rootpath / path).is_file()]:
        raise pytest.UsageError(f"conftest.py's LONGEST_FIRST names files that are not there: {missing}")
    rank = {path: index for index, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: a file's order kept
