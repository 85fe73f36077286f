"""Where a run writes: its own ``version_N`` directory, claimed atomically, checked before training.

Lightning's TensorBoardLogger picks the next version by listing the folder, so runs started together
pick the same one and write into each other's files. Here ``os.mkdir`` claims the name: it fails
when another process took it first, and the next number is tried.
"""

import os
import shlex
import sys
import tempfile
from pathlib import Path

from linear_pl.runner.errors import UsageError
from linear_pl.runner.flags import without_flag

# Set by the process that claimed the directory, for the DDP ranks Lightning relaunches from it
# (they inherit its environment, with LOCAL_RANK > 0): every rank of a run writes into one directory.
RUN_DIR_ENV = "LINEAR_PL_RUN_DIR"


def _versions(logs: Path) -> list[int]:
    names = (p.name.removeprefix("version_") for p in logs.glob("version_*"))
    return [int(name) for name in names if name.isdigit()]


def claim_run_dir(root: Path) -> Path:
    """Create and return ``root/lightning_logs/version_N``, N one past the highest taken; one line if it cannot."""
    logs = root / "lightning_logs"
    try:
        logs.mkdir(parents=True, exist_ok=True)
        while True:
            run_dir = logs / f"version_{max(_versions(logs), default=-1) + 1}"
            try:
                run_dir.mkdir()
                break
            except FileExistsError:  # another run claimed it between our listing and our mkdir
                continue
    except OSError as error:
        raise UsageError(f"{logs}: cannot create the run directory ({error.strerror})") from None
    check_writable(run_dir)
    return run_dir


def check_writable(directory: Path) -> None:
    """One line, before any training, if files cannot be written in ``directory``."""
    try:
        with tempfile.NamedTemporaryFile(dir=directory):
            pass
    except OSError as error:
        raise UsageError(f"{directory}: cannot write there ({error.strerror})") from None


def inherited_run_dir() -> Path | None:
    """The directory of the run this process is a relaunched DDP rank of, if it is one."""
    inherited = os.environ.get(RUN_DIR_ENV)
    return Path(inherited) if inherited and os.environ.get("LOCAL_RANK", "0") != "0" else None


def _launched_by_another_tool() -> bool:
    # torchrun and srun start every rank themselves: none of them can hand rank 0's claim to the others
    # before the process group exists, so Lightning's logger chooses and broadcasts rank 0's choice.
    return "LOCAL_RANK" in os.environ or "RANK" in os.environ or int(os.environ.get("SLURM_NTASKS", "1")) > 1


def choose_run_dir(root: Path, version: int | None) -> Path | None:
    """The run's directory: a resumed run's own, the one a relaunched DDP rank inherits, or a new claim.

    None where the ranks were started by torchrun or SLURM (then the logger picks, as Lightning does).
    """
    if (inherited := inherited_run_dir()) is not None:
        return inherited
    if version is not None:
        return root / "lightning_logs" / f"version_{version}"
    if _launched_by_another_tool():
        return None
    run_dir = claim_run_dir(root)
    os.environ[RUN_DIR_ENV] = str(run_dir)  # for the DDP ranks Lightning relaunches from this process
    return run_dir


def release_run_dir(run_dir: Path | None) -> None:
    """Remove a run directory claimed for a run that could not start, if nothing was written in it."""
    if run_dir is None or os.environ.get(RUN_DIR_ENV) != str(run_dir):
        return  # not claimed by this process (a resumed run's own, or a relaunched rank's)
    del os.environ[RUN_DIR_ENV]
    for directory in (run_dir, run_dir.parent):  # and lightning_logs/, if this was its first run
        try:
            directory.rmdir()
        except OSError:  # not empty: keep it
            return


def continue_command(args: list[str], checkpoint: str = "last") -> str:
    """The command that continues an interrupted run: as it was started, the same flags, ``--ckpt_path last``
    (or the path given)."""
    return shlex.join([*how_started(), *without_flag(args, "--ckpt_path"), "--ckpt_path", checkpoint])


SCRIPTS = {"fit": "train.py", "sweep": "sweep.py"}


def how_started(command: str = "fit") -> list[str]:
    """How to start ``command`` (fit or sweep) as this process was started, up to its flags: ``python
    PATH/train.py`` with the scripts' folder as it was given, ``python -m PACKAGE fit``, or the console
    script's ``NAME fit``; ``python scripts/train.py`` where the process is another (a test)."""
    started = Path(sys.argv[0])
    package = __name__.split(".")[0]
    if started.name in ("train.py", "predict.py", "sweep.py"):
        return ["python", str(started.with_name(SCRIPTS[command]))]
    if started.name == "__main__.py" and started.parent.name == package:
        return ["python", "-m", package, command]
    if started.name == package.replace("_", "-"):
        return [started.name, command]
    return ["python", f"scripts/{SCRIPTS[command]}"]
