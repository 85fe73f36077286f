"""Collects the ```console sessions of README.md and docs/*.md as tests (tests/readme_sessions.py says how
they run).

This must sit at the top: pytest asks only the conftest.py files above a file to collect it, and
Sybil only parses files under the directory of the file that makes the Sybil object."""

from sybil import Sybil

from tests.readme_sessions import ConsoleSessionParser

# The example's fixtures, apart from tests/conftest.py, which serves the runner's tests on any model.
pytest_plugins = ["tests.example_fixtures"]

pytest_collect_file = Sybil(
    parsers=[ConsoleSessionParser()], patterns=["README.md", "docs/*.md"], fixtures=["tmp_path_factory"]
).pytest()
