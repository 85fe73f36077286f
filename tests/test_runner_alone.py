"""The runner stands on its own: it names no example, and a copy without the example trains any model."""

import json
import os
import shutil
import subprocess
import sys

from conftest import CLASSIFIER, ROOT


def test_the_runner_names_no_example():
    named = subprocess.run(["grep", "-rniE", "regression|true_weights|hidden_sizes|precondition|tutorial",
                            str(ROOT / "linear_pl" / "runner")], capture_output=True, text=True)  # fmt: skip
    assert named.stdout == ""


RUNNER_FILES = ("linear_pl/__init__.py", "linear_pl/__main__.py", "linear_pl/runner", "scripts/train.py",
                "scripts/predict.py", "tests/conftest.py", "tests/lit_classifier.py", "tests/test_runner.py",
                "pyproject.toml")  # fmt: skip


def test_the_runner_works_with_the_example_deleted(tmp_path):
    """A copy without linear_pl/regression/ and linear_pl/registry.py imports and trains any model to the end.

    Its tests (tests/test_runner.py) pass without the example in the project `linear-pl new` writes, which has
    none of it (test_new_project.py's subset): running them here too would test the same code twice.
    """
    for name in RUNNER_FILES:
        source, target = ROOT / name, tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, target)
    assert not (tmp_path / "linear_pl" / "regression").exists()
    assert not (tmp_path / "linear_pl" / "registry.py").exists()
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.pathsep.join([str(tmp_path), str(tmp_path / "tests")]),
           "HOME": str(tmp_path)}  # fmt: skip
    train = [sys.executable, "scripts/train.py", *CLASSIFIER, "--max_epochs", "2", "--default_root_dir", "runs"]
    done = subprocess.run(train, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(next((tmp_path / "runs").glob("lightning_logs/version_0/results.json")).read_text())
    assert results["model"] == "Classifier" and results["epochs"] == 2 and results["stopped_because"] == "max_epochs"
    imported = subprocess.run([sys.executable, "-c", "import linear_pl.runner.cli as c; print(c.__file__)"],
                              cwd=tmp_path, env=env, capture_output=True, text=True)  # fmt: skip
    assert imported.stdout.strip() == str(tmp_path / "linear_pl" / "runner" / "cli.py")
