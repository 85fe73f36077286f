"""``linear-pl new DIR --package NAME``: the project it writes owns its run machinery, names nothing of
linear_pl or the example, lints clean, trains its starter, passes its own tests, and runs a user's model.

The generated project's scripts run here with this venv and PYTHONPATH set to the project: its
dependencies are this project's (less the example's polars), so a venv of its own would install the
same packages again for minutes and prove nothing more. Its Makefile's pin and dependencies are
checked against this repository's instead.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import PYTHON
from linear_pl import new_project
from linear_pl.__main__ import main as linear_pl_main
from linear_pl.new_project import TemplateLeftover, new_main, write_project

tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the checks that read pyproject.toml need it

ROOT = Path(__file__).resolve().parent.parent
NAME = "cancer_pl"
# The runner's tests to run in the generated project by default; the whole of its suite is `slow`.
SUBSET = ("tests/test_starter.py", "tests/test_runner.py", "-m", "not slow")


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """One generated project shared by the tests that only read it or run from it."""
    return write_project(tmp_path_factory.mktemp("generated") / "cancer", NAME)


def run_in(
    project: Path, *command: str, cwd: Path, python: str = sys.executable, timeout: float = 600
) -> subprocess.CompletedProcess:
    """``command`` with ``python`` (this venv's; the warm one for scripts), the generated project importable,
    in ``cwd``."""
    env = {**os.environ, "PYTHONPATH": str(project)}
    return subprocess.run([python, *command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def script(project: Path, name: str, *flags: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_in(project, str(project / "scripts" / f"{name}.py"), *flags, cwd=cwd, python=PYTHON)


def newest_run(root: Path) -> Path:
    return max((root / "lightning_logs").glob("version_*"), key=lambda p: int(p.name.split("_")[1]))


# --- the command -----------------------------------------------------------------------------------


def test_python_m_linear_pl_new_writes_the_project(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "linear_pl", "new", str(tmp_path / "cancer"), "--package", NAME],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == f"wrote {tmp_path / 'cancer'}: package cancer_pl, command cancer-pl"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cancer"]  # the temporary folder is gone
    project = tmp_path / "cancer"
    for path in ("Makefile", "pyproject.toml", "README.md", ".gitignore", ".ci/run", "space.yaml",
                 "scripts/train.py", "scripts/predict.py", "scripts/sweep.py", "tests/conftest.py",
                 "tests/test_starter.py", *new_project.RUNNER_TESTS,
                 "cancer_pl/__init__.py", "cancer_pl/__main__.py", "cancer_pl/registry.py", "cancer_pl/model.py",
                 "cancer_pl/data.py", "cancer_pl/runner/cli.py", "cancer_pl/runner/project.py",
                 "cancer_pl/sweep/command.py"):  # fmt: skip
        assert (project / path).is_file(), path
    assert os.access(project / ".ci/run", os.X_OK)
    assert not list(project.rglob("__pycache__")) and not (project / ".ruff_cache").exists()


def test_the_project_is_named_for_its_package(project):
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == "cancer_pl"
    assert pyproject["project"]["scripts"] == {"cancer-pl": "cancer_pl.__main__:main"}
    assert "cancer_pl[sweep]" in pyproject["project"]["optional-dependencies"]["test"]
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
    """Issue 26's own grep. It fails while the runner copied from here still names the example."""
    grep = subprocess.run(
        ["grep", "-rIliE", "linear_pl|linear-pl|regression|true_weights|tutorial", "."],
        cwd=project, capture_output=True, text=True,
    )  # fmt: skip
    assert grep.returncode == 1 and grep.stdout == "", grep.stdout


def test_a_copied_file_naming_the_example_fails_loudly_and_writes_nothing(tmp_path, monkeypatch):
    render = new_project.render_template

    def render_and_leave_a_word(into: Path, package: str) -> None:
        render(into, package)
        (into / package / "extra.py").write_text("# fits the true_weights\n")

    monkeypatch.setattr(new_project, "render_template", render_and_leave_a_word)
    monkeypatch.setattr(new_project, "RUNNER_TESTS", ())  # today's runner tests name the example themselves
    monkeypatch.setattr(new_project, "MACHINERY", ("__main__.py",))  # so does today's runner
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


def test_an_empty_folder_is_used(tmp_path):
    (tmp_path / "cancer").mkdir()
    assert write_project(tmp_path / "cancer", NAME) == tmp_path / "cancer"
    assert (tmp_path / "cancer" / "cancer_pl" / "registry.py").is_file()


# --- the project works --------------------------------------------------------------------------------


def test_its_lint_passes(project):
    for command in (["check", "--no-cache", "."], ["format", "--no-cache", "--check", "."]):
        done = run_in(project, "-m", "ruff", *command, cwd=project)
        assert done.returncode == 0, done.stdout + done.stderr


def test_a_long_package_name_still_lints(tmp_path):
    """A longer name than linear_pl lengthens lines: the copy is reformatted, and lint allows what it cannot split."""
    project = write_project(tmp_path / "long", "a_much_longer_package_name")
    for command in (["check", "--no-cache", "."], ["format", "--no-cache", "--check", "."]):
        done = run_in(project, "-m", "ruff", *command, cwd=project)
        assert done.returncode == 0, done.stdout + done.stderr


def test_the_starter_trains_out_of_the_box(project, tmp_path):
    done = script(project, "train", "--trainer.max_epochs", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run_dir = newest_run(tmp_path)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["model"] == "StarterClassifier" and results["monitor"] == "val/loss"
    assert results["epochs"] == 2 and results["stopped_because"] == "max_epochs"
    assert 0.0 <= results["metrics"]["val/acc"] <= 1.0 and results["best_value"] == results["metrics"]["val/loss"]
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["model"]["class_path"] == "cancer_pl.model.StarterClassifier"  # the profile's defaults
    assert config["data"]["class_path"] == "cancer_pl.data.StarterData"
    best = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    assert best["hyper_parameters"]["hidden_size"] == 32 and best["epoch"] == 1  # epochs count from 0
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    # predict.py hands the starter's predict_step [x], and it answers one of its 3 classes a row.
    predicted = script(project, "predict", "--ckpt_path", "best", "--x", "[[0, 0], [3, -1]]", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    assert len(predicted.stdout.split()) == 2 and set(predicted.stdout.split()) <= {"0", "1", "2"}


def test_its_own_tests_pass_a_subset(project):
    # One process: this suite's workers already use both cores.
    done = run_in(
        project, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0", *SUBSET, cwd=project, python=PYTHON
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert re.search(r"\b\d+ passed\b", done.stdout) and " failed" not in done.stdout


def collected(project: Path, *paths: str) -> set[str]:
    """The test ids ``pytest --collect-only`` finds in ``project`` (the generated one, or this checkout)."""
    done = run_in(
        project, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *paths, cwd=project, python=PYTHON
    )
    assert done.returncode == 0, done.stdout[-3000:]
    return {line for line in done.stdout.splitlines() if "::" in line}


def test_its_ci_reruns_its_own_tests_under_other_kernels(project):
    """.ci/run's last command runs the project's own tests again under MKL's generic kernels and one thread,
    and none of the runner's copied tests (they pin no learned figure)."""
    rerun = (project / ".ci/run").read_text().splitlines()[-1]
    assert rerun.startswith("MKL_CBWR=COMPATIBLE OMP_NUM_THREADS=1 .venv/bin/python -m pytest "), rerun
    args = [arg for arg in shlex.split(rerun.split(" -m pytest ", 1)[1]) if arg != "-q"]  # collected() gives -q
    ids = collected(project, *args)
    assert ids and all(test_id.startswith("tests/test_starter.py::") for test_id in ids), ids


def test_its_whole_suite_collects_the_runners_tests(project):
    """Every copied test file imports and collects in the new project, test for test as it does here: the same
    tests, on the same runner, pass here (tests/test_run_*.py ...). Running them all again there would double
    `make test` (13 min here) to test the same code twice; the subset above runs them on the copy."""
    copied = [path for path in new_project.RUNNER_TESTS if Path(path).name.startswith("test_")]
    here = {test_id.replace("linear_pl", NAME) for test_id in collected(ROOT, *copied)}
    there = collected(project)
    assert there - here == {t for t in there if t.startswith("tests/test_starter.py::")} != set()
    assert here <= there, sorted(here - there)[:5]


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


def test_a_users_model_trains_tests_and_predicts_with_its_own_flags(users_project, tmp_path):
    trained = script(users_project, "train", *USERS, *USERS_FLAGS, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    run_dir = newest_run(tmp_path)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["model"]["init_args"] == {"width": 8, "dropout": 0.1, "learning_rate": 0.01}
    assert config["data"]["init_args"]["num_points"] == 128
    results = json.loads((run_dir / "results.json").read_text())
    assert results["model"] == "SineFit" and results["epochs"] == 3

    # test and predict rebuild the checkpoint's model and data: no --model, no --data.
    tested = script(users_project, "train", "test", "--ckpt_path", "best", cwd=tmp_path)
    assert tested.returncode == 0, tested.stderr
    assert re.search(r"best\.ckpt: test_loss \d", tested.stdout), tested.stdout
    predicted = script(users_project, "predict", "--ckpt_path", "best", "--x", "[[0.5], [1.5]]", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    values = [float(v) for v in predicted.stdout.split()]
    model_state = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    assert len(values) == 2 and model_state["hyper_parameters"]["width"] == 8


@pytest.mark.slow
def test_a_users_model_sweeps_with_two_workers(users_project, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("model.width: {type: categorical, choices: [4, 8]}\n")
    done = script(users_project, "sweep", "--space", str(space), "--n_trials", "2", "--n_jobs", "2",
                  *USERS, "--num_points", "64", "--trainer.max_epochs", "2", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    trials = sorted((tmp_path / "sweeps" / "space").glob("trial_*"))
    results = [json.loads((trial / "results.json").read_text()) for trial in trials]
    assert sorted(r["trial"] for r in results) == [0, 1] and {r["model"] for r in results} == {"SineFit"}
    assert all(set(r["params"]) == {"model.width"} for r in results)
    configs = [yaml.safe_load((trial / "config.yaml").read_text()) for trial in trials]
    assert all(c["data"]["init_args"]["num_points"] == 64 for c in configs)  # the user's flag, every trial's base
