"""``linear-pl new DIR --package NAME``: the project it writes owns its run machinery, names nothing of
linear-pl or the example, lints clean, passes its own tests (its starter trains and predicts there), and runs
a user's model.

The command runs in this process. The generated project runs as processes of its own (its package is another
copy of the runner), with this venv and PYTHONPATH set to the project: its dependencies are this project's
(less the example's polars), so a venv of its own would install the same packages again for minutes and prove
nothing more. Its Makefile's pin and dependencies are checked against this repository's instead.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from runner.commands import ROOT, run_quietly

from linear_pl import new_project
from linear_pl.__main__ import main as linear_pl_main
from linear_pl.new_project import TemplateLeftover, new_main, write_project

tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the checks that read pyproject.toml need it

NAME = "cancer_pl"
# The tests to run in the generated project: its own (the starter's), and of the runner's, predict's, through the
# copied fixtures and classifier (the whole of the runner's tests pass here, on the same runner).
SUBSET = ("-k", "test_starter or test_predict", "-m", "not slow")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """``linear-pl new`` run once, into an empty folder: its status, what it printed, and the project (``root``),
    which the tests that only read it or run from it share."""
    target = tmp_path_factory.mktemp("generated") / "cancer"
    target.mkdir()  # an empty folder is used
    return run_quietly(linear_pl_main, "new", str(target), "--package", NAME, "--sweep", root=target)


@pytest.fixture(scope="module")
def project(written) -> Path:
    assert written.status == 0, written.stderr
    return written.root


def run_in(project: Path, *command: str, cwd: Path, timeout: float = 600, **variables) -> subprocess.CompletedProcess:
    """``python COMMAND`` with this venv's python and the generated project importable, in ``cwd``."""
    env = {**os.environ, "PYTHONPATH": str(project), **variables}
    return subprocess.run([sys.executable, *command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def script(project: Path, name: str, *flags: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_in(project, str(project / "scripts" / f"{name}.py"), *flags, cwd=cwd)


def newest_run(root: Path) -> Path:
    return max((root / "lightning_logs").glob("version_*"), key=lambda p: int(p.name.split("_")[1]))


# --- a user's own model, dropped into it ----------------------------------------------------------------

USERS_MODULE = '''\
"""A user's own pair: an MLP fitting a noisy sine, in plain Lightning."""

import lightning as L
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset


class SineFit(L.LightningModule):
    def __init__(self, width: int = 16, dropout: float = 0.0, learning_rate: float = 0.01) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(1, width), nn.Tanh(), nn.Dropout(dropout), nn.Linear(width, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train/loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", F.mse_loss(self(x), y))

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test/loss", F.mse_loss(self(x), y))

    def predict_step(self, batch, batch_idx):
        (x,) = batch
        return self(x)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.learning_rate)


class SineData(L.LightningDataModule):
    def __init__(self, num_points: int = 256, noise: float = 0.1, batch_size: int = 32, seed: int = 0) -> None:
        super().__init__()
        self.num_points, self.noise, self.batch_size, self.seed = num_points, noise, batch_size, seed

    def setup(self, stage=None):
        generator = torch.Generator().manual_seed(self.seed)
        x = 6 * torch.rand(self.num_points, 1, generator=generator) - 3
        y = torch.sin(x[:, 0]) + self.noise * torch.randn(self.num_points, generator=generator)
        cut = self.num_points * 3 // 4
        self.train_set, self.val_set = TensorDataset(x[:cut], y[:cut]), TensorDataset(x[cut:], y[cut:])

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=self.batch_size)

    def test_dataloader(self):
        return self.val_dataloader()
'''
USERS = ["--model", "cancer_pl.sine.SineFit", "--data", "cancer_pl.sine.SineData"]
USERS_FLAGS = ["--width", "8", "--dropout", "0.1", "--num_points", "128", "--trainer.max_epochs", "3"]


@pytest.fixture(scope="module")
def users_project(project, tmp_path_factory) -> Path:
    """A copy of the project with the user's module dropped into its package."""
    copy = tmp_path_factory.mktemp("users") / "cancer"
    shutil.copytree(project, copy)
    (copy / NAME / "sine.py").write_text(USERS_MODULE)
    return copy


# --- the whole project: its lint, its tests, a user's model ---------------------------------------------


@pytest.mark.slow
def test_linear_pl_new_writes_a_project_that_lints_passes_its_tests_and_runs_a_users_model(
    written, project, users_project, tmp_path
):
    assert written.stdout.splitlines()[0] == f"wrote {project}: package cancer_pl, command cancer-pl", written.stdout
    assert written.stderr == ""
    assert sorted(p.name for p in project.parent.iterdir()) == ["cancer"]  # the temporary folder is gone
    for path in ("Makefile", "pyproject.toml", "README.md", ".gitignore", ".ci/run", "space.yaml",
                 "scripts/train.py", "scripts/predict.py", "scripts/sweep.py", "tests/test_starter.py",
                 "cancer_pl/__init__.py", "cancer_pl/__main__.py", "cancer_pl/registry.py", "cancer_pl/model.py",
                 "cancer_pl/data.py", "cancer_pl/runner/cli.py", "cancer_pl/runner/project.py",
                 "cancer_pl/sweep/command.py"):  # fmt: skip
        assert (project / path).is_file(), path
    # The runner's tests, the whole folder.
    runner_tests = ROOT / new_project.RUNNER_TESTS

    def files(folder: Path) -> list[str]:
        return sorted(str(p.relative_to(folder)) for p in folder.rglob("*.py") if "__pycache__" not in p.parts)

    assert files(project / new_project.RUNNER_TESTS) == files(runner_tests) != []
    assert os.access(project / ".ci/run", os.X_OK)
    assert not list(project.rglob("__pycache__")) and not (project / ".ruff_cache").exists()

    # Without --sweep: no sweep package, script, tests or space, and its README says how to add them.
    longer = tmp_path / "long"
    assert write_project(longer, "a_much_longer_package_name") == longer  # a new folder
    for path in ("a_much_longer_package_name/sweep", "scripts/sweep.py", "space.yaml", "tests/runner/test_sweep.py"):
        assert not (longer / path).exists(), path
    assert files(longer / new_project.RUNNER_TESTS) == [f for f in files(runner_tests) if f != "test_sweep.py"]
    assert "## Adding the hyperparameter sweep" in (longer / "README.md").read_text()
    assert "## Adding" not in (project / "README.md").read_text()
    extras = tomllib.loads((longer / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert not [extra for extra in extras["test"] if "sweep" in extra]

    # Its lint passes. A longer name than linear_pl lengthens lines: the copy is reformatted, and lint allows what
    # it cannot split.
    for root in (project, longer):
        for command in (["check", "--no-cache", "."], ["format", "--no-cache", "--check", "."]):
            done = run_in(root, "-m", "ruff", *command, cwd=root)
            assert done.returncode == 0, done.stdout + done.stderr

    # Its `make test`, in part, in one process (this suite's workers already use both cores): every test file
    # there imports and collects (one that does not fails the run), and the starter's tests (its run learns and
    # predicts, its output clean) and the runner's predict tests pass. The runner's other tests pass here, from
    # the same files on the same runner: running them all again there would test the same code twice. No
    # __pycache__ left in the project the other tests read.
    done = run_in(project, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SUBSET, "tests", cwd=project,
                  PYTHONDONTWRITEBYTECODE="1")  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    counts = re.search(r"\b(\d+) passed, (\d+) deselected\b", done.stdout)
    assert counts, done.stdout[-3000:]
    assert int(counts[1]) > 10 and int(counts[2]) > 50  # the runner's other tests, collected and left out
    # Without the sweep, every test file collects too.
    done = run_in(longer, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only", "tests", cwd=longer,
                  PYTHONDONTWRITEBYTECODE="1")  # fmt: skip
    assert done.returncode == 0 and re.search(r"\b\d{2,} tests collected\b", done.stdout), done.stdout[-3000:]

    # .ci/run's last command reruns its own tests alone (all but tests/runner/, which pin no learned figure),
    # under MKL's generic kernels and one thread.
    rerun = (project / ".ci/run").read_text().splitlines()[-1]
    assert rerun == "MKL_CBWR=COMPATIBLE OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q --ignore=tests/runner tests"

    # A user's own model, dropped into the project's package, trains, and sweeps with two workers, with its own flags.
    runs = tmp_path / "runs"
    runs.mkdir()
    trained = script(users_project, "train", *USERS, *USERS_FLAGS, cwd=runs)
    assert trained.returncode == 0, trained.stderr
    run_dir = newest_run(runs)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["model"]["init_args"] == {"width": 8, "dropout": 0.1, "learning_rate": 0.01}
    assert config["data"]["init_args"]["num_points"] == 128
    results = json.loads((run_dir / "results.json").read_text())
    assert results["model"] == "SineFit" and results["epochs"] == 3

    assert torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)["hyper_parameters"]["width"] == 8
    # (predict rebuilds a checkpoint's model and data, no --model, no --data: the starter's test, which passes in
    # the generated project above; test and validate too: runner/test_command_line.py, here.)

    space = runs / "space.yaml"
    space.write_text("model.width: {type: categorical, choices: [4, 8]}\n")
    done = script(users_project, "sweep", "--space", str(space), "--n_trials", "2", "--n_jobs", "2",
                  *USERS, "--num_points", "64", "--trainer.max_epochs", "2", cwd=runs)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    trials = sorted((runs / "sweeps" / "space").glob("trial_*"))
    results = [json.loads((trial / "results.json").read_text()) for trial in trials]
    assert sorted(r["trial"] for r in results) == [0, 1] and {r["model"] for r in results} == {"SineFit"}
    assert all(set(r["params"]) == {"model.width"} for r in results)
    configs = [yaml.safe_load((trial / "config.yaml").read_text()) for trial in trials]
    assert all(c["data"]["init_args"]["num_points"] == 64 for c in configs)  # the user's flag, every trial's base


# --- the command -----------------------------------------------------------------------------------


def test_the_project_is_named_for_its_package(project):
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == "cancer_pl"
    assert pyproject["project"]["scripts"] == {"cancer-pl": "cancer_pl.__main__:main"}
    assert {"cancer_pl[sweep]", "cancer_pl[serve]"} <= set(pyproject["project"]["optional-dependencies"]["test"])
    assert pyproject["tool"]["setuptools"]["packages"]["find"]["include"] == ["cancer_pl*"]
    # The environment variables and the sweep's workers are the new package's.
    assert 'STORAGE_ENV = "CANCER_PL_STORAGE"' in (project / "cancer_pl/sweep/flags.py").read_text()
    assert '"-m", "cancer_pl", "sweep"' in (project / "cancer_pl/sweep/command.py").read_text()
    main = (project / "cancer_pl/__main__.py").read_text()
    assert "cancer-pl" in main and '"new"' not in main and "new_project" not in main
    assert set((project / ".gitignore").read_text().split()) >= {"lightning_logs/", "sweeps/", ".venv/"}
    profile = (project / "cancer_pl/registry.py").read_text()
    assert 'model="cancer_pl.model.StarterClassifier"' in profile and 'data="cancer_pl.data.StarterData"' in profile


def test_its_dependencies_and_torch_pin_are_this_repositorys(project):
    """A bump of torch or of a dependency here that forgets the template fails here."""
    ours = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    theirs = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    # The example's CSV reader, and the formatter `new` runs (the new project has ruff in its test extra).
    ours_only = {"polars>=1.0", "ruff>=0.17,<0.18"}
    assert theirs["dependencies"] == [d for d in ours["dependencies"] if d not in ours_only]
    assert theirs["optional-dependencies"]["sweep"] == ours["optional-dependencies"]["sweep"]
    assert theirs["optional-dependencies"]["export"] == ours["optional-dependencies"]["export"]

    def pin(makefile: Path) -> str:
        return next(line for line in makefile.read_text().splitlines() if line.startswith("TORCH ?="))

    assert pin(project / "Makefile") == pin(ROOT / "Makefile") == "TORCH ?= torch==2.13.0"
    makefile = (project / "Makefile").read_text()
    for target in ("train:", "test:", "lint:", "sweep:"):
        assert f"\n{target}" in makefile
    # torch first, pinned, then the project: pip never resolves an unpinned torch. The same set-up as ours.
    pip = "pip install --quiet --no-compile"
    assert makefile.index(f"{pip} $(TORCH)") < makefile.index(f'{pip} -e ".')

    def setup(makefile: str) -> str:
        return makefile[makefile.index("define setup") : makefile.index("endef")]

    assert setup(makefile) == setup((ROOT / "Makefile").read_text())


def test_nothing_in_it_names_linear_pl_or_the_example(project):
    """Issue 26's own grep (``grep -rIliE``: every text file, any case)."""
    words = re.compile(rb"linear_pl|linear-pl|regression|true_weights|tutorial", re.IGNORECASE)
    texts = {path: path.read_bytes() for path in project.rglob("*") if path.is_file()}
    named = [str(path) for path, text in texts.items() if b"\0" not in text and words.search(text)]  # -I: not binary
    assert len(texts) > 20 and named == []


def test_a_copied_file_naming_the_example_fails_loudly_and_writes_nothing(tmp_path, monkeypatch):
    render = new_project.render_template

    def render_and_leave_a_word(into: Path, package: str, sweep: bool) -> None:
        render(into, package, sweep)
        (into / package / "extra.py").write_text("# fits the true_weights\n")

    monkeypatch.setattr(new_project, "render_template", render_and_leave_a_word)
    monkeypatch.setattr(new_project, "format_copy", lambda into: None)  # ruff's style is not what is tested
    monkeypatch.setattr(new_project, "MACHINERY", ("__main__.py",))  # less to copy
    monkeypatch.setattr(new_project, "SCRIPTS", ("scripts/predict.py",))
    with pytest.raises(TemplateLeftover, match=r"cancer_pl/extra\.py: true_weights"):
        write_project(tmp_path / "cancer", NAME)
    assert list(tmp_path.iterdir()) == []


def test_leftovers_do_not_count_the_package_name(tmp_path):
    (tmp_path / "a.py").write_text("import regression_tools\n# regression-tools\n")
    (tmp_path / "b.md").write_text("The Tutorial\n")
    assert new_project.leftovers(tmp_path, "regression_tools") == ["b.md: Tutorial"]


# --- bad input: one line, exit 2, nothing written ------------------------------------------------------


@pytest.mark.parametrize(
    ("package", "says"),
    [("cancer-pl", "not a Python identifier"), ("1cancer", "not a Python identifier"), ("", "not a Python identifier"),
     ("class", "a Python keyword"), ("match", "a Python keyword"), ("torch", "would shadow"),
     ("lightning", "would shadow"), ("json", "would shadow"), ("tests", "would shadow")],
)  # fmt: skip
def test_a_bad_package_name_is_one_line(tmp_path, capsys, package, says):
    status = new_main([str(tmp_path / "cancer"), "--package", package])
    out, err = capsys.readouterr()
    assert status == 2 and out == "" and err.count("\n") == 1
    assert err.startswith(f"error: --package {package}: {says}")
    assert list(tmp_path.iterdir()) == []


def test_a_bad_folder_is_one_line(tmp_path, capsys):
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine\n")
    a_file = tmp_path / "a_file"
    a_file.write_text("mine\n")
    before = sorted(tmp_path.rglob("*"))
    for target, says in ((full, "exists and is not empty"), (a_file, "exists and is not a folder"),
                         (tmp_path / "no" / "such", "no such folder")):  # fmt: skip
        status = linear_pl_main(["new", str(target), "--package", NAME])  # through `linear-pl new`
        out, err = capsys.readouterr()
        assert status == 2 and out == "" and err.count("\n") == 1 and says in err, err
    assert sorted(tmp_path.rglob("*")) == before and (full / "notes.txt").read_text() == "mine\n"


def test_missing_arguments_are_one_line(tmp_path, capsys):
    for argv in ([str(tmp_path / "x")], ["--package", NAME], [str(tmp_path / "x"), "--package", NAME, "--pakage", "y"]):
        status = new_main(argv)
        out, err = capsys.readouterr()
        assert status == 2 and out == "" and err.count("\n") == 1 and err.startswith("error: "), err
    assert list(tmp_path.iterdir()) == []
