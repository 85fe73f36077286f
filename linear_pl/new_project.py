"""``linear-pl new DIR --package NAME``: write a new project that owns a copy of the run machinery.

The copy is this checkout's own ``runner/``, ``__main__.py``, ``scripts/`` and the runner's tests (with
``--sweep``, also ``sweep/``, its script and its tests), with ``linear_pl`` renamed to NAME; the rest (starter
model and data, registry, Makefile, ...) is rendered from ``project_template/``. Everything is written into a
temporary folder beside DIR and renamed into place at the end, so a failure leaves nothing behind.
docs/your_model.md says why this is plain code and not copier.
"""

import keyword
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from linear_pl.runner.errors import OneLineArgumentParser, UsageError

PACKAGE = Path(__file__).resolve().parent  # linear_pl/
CHECKOUT = PACKAGE.parent  # scripts/ and tests/ live here, outside the package
TEMPLATE = PACKAGE / "project_template"

# The run machinery, copied from the package (relative to linear_pl/).
MACHINERY = ("runner", "__main__.py")
SCRIPTS = ("scripts/train.py", "scripts/predict.py")
# The sweep, copied only with --sweep: the package (relative to linear_pl/), its script and its tests (relative
# to the checkout). A project made without it can take it later (its README says how).
SWEEP, SWEEP_SCRIPT, SWEEP_TESTS = "sweep", "scripts/sweep.py", "tests/runner/test_sweep.py"
# The template's parts for a project with the sweep, and for one without: {{sweep:}}...{{:sweep}} and
# {{nosweep:}}...{{:nosweep}}, each kept or dropped whole.
SWEEP_PART = re.compile(r"\{\{(no)?sweep:\}\}(.*?)\{\{:(?:no)?sweep\}\}", re.DOTALL)
# The runner's own tests, copied whole into every new project (relative to the checkout): each runs on any
# model, as the new project has none of the example. project_template/dot-ci/run.tmpl names it too.
RUNNER_TESTS = "tests/runner"
# What a new project must not name: this repository, or its tutorial example (issue 26's grep).
LEFTOVER = re.compile(r"linear_pl|linear-pl|regression|true_weights|tutorial", re.IGNORECASE)
# Package names that would shadow what the new project imports (its dependencies, and the folders
# next to the package), besides the standard library's.
SHADOWED = frozenset(
    {
        "torch", "lightning", "pytorch_lightning", "lightning_fabric", "lightning_utilities", "torchmetrics",
        "numpy", "tensorboard", "jsonargparse", "yaml", "optuna", "optuna_integration", "matplotlib",
        "pytest", "ruff", "setuptools", "pip", "scripts", "tests", "conftest", "linear_pl",
        "runner",  # tests/runner/, the runner's tests, import as the package runner
    }
)  # fmt: skip
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")


class TemplateLeftover(Exception):
    """A copied file still names this repository or its example: this repository's bug, exit 1."""


def script_name(package: str) -> str:
    """The console script: ``cancer_pl`` -> ``cancer-pl``, as ``linear_pl`` has ``linear-pl``."""
    return package.replace("_", "-")


def check_package(package: str) -> None:
    if not package.isidentifier():
        raise UsageError(f"--package {package}: not a Python identifier (letters, digits and _, not first a digit)")
    if keyword.iskeyword(package) or keyword.issoftkeyword(package):
        raise UsageError(f"--package {package}: a Python keyword")
    if package in SHADOWED or package in sys.stdlib_module_names:
        raise UsageError(
            f"--package {package}: would shadow the module of that name the project imports; choose another"
        )


def check_target(target: Path) -> None:
    if target.is_dir() and any(target.iterdir()):
        raise UsageError(f"{target}: exists and is not empty; give a new or empty folder")
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target}: exists and is not a folder")
    if not target.parent.is_dir():
        raise UsageError(f"{target.parent}: no such folder to write {target.name} into")
    missing = [path for path in SCRIPTS if not (CHECKOUT / path).is_file()]
    missing += [RUNNER_TESTS] if not (CHECKOUT / RUNNER_TESTS).is_dir() else []
    if missing:  # an install from a wheel has the package but not the checkout's scripts/ and tests/
        raise UsageError(f"{CHECKOUT / missing[0]}: missing; `new` copies from a checkout of linear_pl (make install)")


def renamed(text: str, package: str) -> str:
    """This package's names turned into the new one's: imports, ``LINEAR_PL_*`` variables, the command."""
    text = text.replace("LINEAR_PL", package.upper()).replace("linear_pl", package)
    return text.replace("linear-pl", script_name(package))


def without_new_command(text: str) -> str:
    """``__main__.py`` less its ``new`` branch: a new project is not a template for others."""
    branch = re.compile(r'    if command == "new":.*?return new_main\(rest\)\n', re.DOTALL)
    if len(branch.findall(text)) != 1:
        raise TemplateLeftover("__main__.py: its `new` branch is not where new_project.py looks for it")
    return branch.sub("", text)


def copy_machinery(into: Path, package: str, sweep: bool) -> None:
    for name in (*MACHINERY, SWEEP) if sweep else MACHINERY:
        source, target = PACKAGE / name, into / package / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=IGNORED)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    main = into / package / "__main__.py"
    main.write_text(without_new_command(main.read_text()))
    for path in (*SCRIPTS, SWEEP_SCRIPT) if sweep else SCRIPTS:
        (into / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(CHECKOUT / path, into / path)
    without_sweep = () if sweep else (Path(SWEEP_TESTS).name,)
    shutil.copytree(CHECKOUT / RUNNER_TESTS, into / RUNNER_TESTS, ignore=shutil.ignore_patterns(
        "__pycache__", "*.pyc", *without_sweep))  # fmt: skip
    for path in into.rglob("*.py"):
        path.write_text(renamed(path.read_text(), package))


def render_template(into: Path, package: str, sweep: bool) -> None:
    """project_template/ with its ``{{...}}`` placeholders filled in and its sweep parts kept or dropped (a file
    left empty is not written). A file's path drops ``.tmpl``, a leading ``dot-`` becomes ``.`` and the folder
    ``package`` becomes NAME."""
    values = {
        "{{package}}": package,
        "{{PACKAGE}}": package.upper(),
        "{{script}}": script_name(package),
    }
    for source in sorted(TEMPLATE.rglob("*.tmpl")):
        parts = [package if part == "package" else part for part in source.relative_to(TEMPLATE).parts]
        parts = [f".{part[4:]}" if part.startswith("dot-") else part for part in parts]
        target = into.joinpath(*parts).with_suffix("")  # drops .tmpl
        if target.exists():  # a template file and a copied one at one path: which is meant?
            raise TemplateLeftover(f"{target.relative_to(into)}: both copied and in project_template/")
        text = SWEEP_PART.sub(lambda part: part[2] if sweep != bool(part[1]) else "", source.read_text())
        if not text:
            continue
        for placeholder, value in values.items():
            text = text.replace(placeholder, value)
        if "{{" in text:
            raise TemplateLeftover(f"{source.relative_to(TEMPLATE)}: an unknown placeholder {{{{...}}}}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        shutil.copymode(source, target)  # .ci/run stays executable


def format_copy(into: Path) -> None:
    """The copy reformatted: a NAME longer than ``linear_pl`` can push a line past the 120 columns ruff
    keeps (``make lint`` would fail on a fresh project). Imports are re-sorted for the same reason."""
    ruff = [sys.executable, "-m", "ruff"]
    sort_imports = [*ruff, "check", "--no-cache", "--quiet", "--fix", "--select", "I", "."]
    for command in (sort_imports, [*ruff, "format", "--no-cache", "--quiet", "."]):
        done = subprocess.run(command, cwd=into, capture_output=True, text=True)
        if done.returncode != 0:
            raise TemplateLeftover(f"ruff failed on the new project: {(done.stderr or done.stdout).strip()}")


def leftovers(root: Path, package: str) -> list[str]:
    """Each file under ``root`` that names linear_pl or the example, as ``path: word``. NAME itself is not
    counted (``--package regression_tools`` names "regression" on purpose)."""
    own = re.compile("|".join(re.escape(n) for n in (package, script_name(package))), re.IGNORECASE)
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue  # binary: grep -I skips it too
        match = LEFTOVER.search(own.sub("", text))
        if match:
            found.append(f"{path.relative_to(root)}: {match.group(0)}")
    return found


def allow_long_lines(root: Path) -> None:
    """Where renaming made a comment or a string longer than 120 columns (the formatter cannot split
    those), the project's lint says so and allows that much, rather than the first `make lint` failing."""
    longest = max(len(line) for path in root.rglob("*.py") for line in path.read_text().splitlines())
    if longest > 120:
        with (root / "pyproject.toml").open("a") as pyproject:
            pyproject.write(
                "\n[tool.ruff.lint.pycodestyle]\n"
                "# The run machinery was written to 120 columns under a shorter package name; renamed, its\n"
                f"# longest comment or string is {longest} long. The formatter keeps code to 120.\n"
                f"max-line-length = {longest}\n"
            )


def write_project(target: Path, package: str, sweep: bool = False) -> Path:
    """Write the new project into ``target`` (a new or empty folder); returns it. Raises UsageError before
    writing anything, and TemplateLeftover with nothing left behind."""
    check_package(package)
    check_target(Path(target))  # its lines name DIR as the user gave it
    target = Path(target).absolute()
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        copy_machinery(scratch, package, sweep)
        render_template(scratch, package, sweep)
        format_copy(scratch)
        allow_long_lines(scratch)
        found = leftovers(scratch, package)
        if found:
            raise TemplateLeftover(f"{len(found)} file(s) still name linear_pl or the example: {'; '.join(found)}")
        umask = os.umask(0)
        os.umask(umask)
        scratch.chmod(0o777 & ~umask)  # mkdtemp's folder is private; the project is not
        if target.is_dir():
            target.rmdir()  # empty, checked above
        scratch.rename(target)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return target


def new_main(argv: list[str] | None = None) -> int:
    """``linear-pl new DIR --package NAME``; returns the exit status."""
    parser = OneLineArgumentParser(
        prog="linear-pl new",
        allow_abbrev=False,
        description="Write a new project into DIR: the run machinery as package NAME, a starter model and data "
        "module to replace, scripts, Makefile, tests.",
    )
    parser.add_argument("dir", type=Path, metavar="DIR", help="a new or empty folder")
    parser.add_argument("--package", required=True, metavar="NAME", help="the package's name, e.g. cancer_pl")
    parser.add_argument("--sweep", action="store_true", help="with the hyperparameter sweep, its script and tests")
    try:
        options = parser.parse_args(sys.argv[1:] if argv is None else argv)
        write_project(options.dir, options.package, options.sweep)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except TemplateLeftover as error:
        print(f"error: linear_pl's template is broken, nothing was written: {error}", file=sys.stderr)
        return 1
    script = script_name(options.package)
    print(f"wrote {options.dir}: package {options.package}, command {script}")
    print(f"next: cd {options.dir} && make train && make test   (README.md says what every run gives)")
    return 0
