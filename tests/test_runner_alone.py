"""The runner stands on its own: it names no example, and a copy without the example passes its tests."""

import shutil
import subprocess
import sys

import pytest

from conftest import ROOT


def test_the_runner_names_no_example():
    named = subprocess.run(["grep", "-rniE", "regression|true_weights|hidden_sizes|precondition|tutorial",
                            str(ROOT / "linear_pl" / "runner")], capture_output=True, text=True)  # fmt: skip
    assert named.stdout == ""


RUNNER_FILES = ("linear_pl/__init__.py", "linear_pl/__main__.py", "linear_pl/runner", "scripts/train.py",
                "scripts/predict.py", "tests/conftest.py", "tests/lit_classifier.py", "tests/test_runner.py",
                "pyproject.toml")  # fmt: skip


@pytest.mark.slow
def test_the_runner_works_with_the_example_deleted(tmp_path):
    """A copy without linear_pl/regression/ and linear_pl/profile.py imports, trains and passes these tests."""
    for name in RUNNER_FILES:
        source, target = ROOT / name, tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, target)
    assert not (tmp_path / "linear_pl" / "regression").exists() and not (tmp_path / "linear_pl" / "profile.py").exists()
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path), "HOME": str(tmp_path)}
    pytest = [sys.executable, "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider", "tests/test_runner.py"]
    tests = subprocess.run(pytest, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert " passed" in tests.stdout and "failed" not in tests.stdout
    assert "linear_pl/regression" not in tests.stdout
    imported = subprocess.run([sys.executable, "-c", "import linear_pl.runner.cli as c; print(c.__file__)"],
                              cwd=tmp_path, env=env, capture_output=True, text=True)  # fmt: skip
    assert imported.stdout.strip() == str(tmp_path / "linear_pl" / "runner" / "cli.py")
