"""The runner stands on its own: it names no example. (A copy without the example trains any model and passes
the runner's tests: the project `linear-pl new` writes, in test_new_project.py.)"""

import re

from runner.commands import ROOT


def test_the_runner_names_no_example():
    example = re.compile("regression|true_weights|hidden_sizes|precondition|tutorial", re.IGNORECASE)
    files = [path for path in (ROOT / "linear_pl" / "runner").rglob("*") if path.is_file() and path.suffix != ".pyc"]
    assert files and [path.name for path in files if example.search(path.read_text())] == []
