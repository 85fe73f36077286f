"""Whose fault an exception is: bad input Lightning refused (one line, exit 2), or the user's own code (its
traceback, exit 1), or the run's."""

import sysconfig
import traceback
from pathlib import Path

import lightning
from lightning.fabric.utilities.exceptions import MisconfigurationException

from linear_pl.runner.errors import root_cause


def lightning_refused(error: BaseException) -> bool:
    """Whether Lightning refused its configuration once the run started: a Trainer flag it accepted when built
    but cannot honour for this model or data (automatic gradient clipping with manual optimization, a
    ``val_check_interval`` beyond the epoch's batches). Bad input."""
    cause = root_cause(error)
    if isinstance(cause, MisconfigurationException):
        return not raised_in_user_code(error)
    # Lightning's own check of a value (a ValueError raised in its code), not a ValueError of the user's code.
    frames = traceback.extract_tb(cause.__traceback__)
    return isinstance(cause, ValueError) and bool(frames) and _in_lightning(frames[-1].filename)


def _in_lightning(filename: str) -> bool:
    return Path(filename).resolve().is_relative_to(Path(lightning.__file__).resolve().parent)


def _library_paths() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple(str(Path(paths[key]).resolve()) for key in ("stdlib", "platstdlib", "purelib", "platlib"))


def raised_in_user_code(error: BaseException) -> bool:
    """Whether an exception comes from the user's code (their model, data, steps), not the run's or a library's.

    The innermost frame of the traceback that is not a library's decides: the runner's own files mean ours
    (a checkpoint that could not be written), anything else the user's (their setup() opening a missing file).
    """
    error = root_cause(error)
    libraries, runner = _library_paths(), str(Path(__file__).resolve().parent)
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        filename = str(Path(frame.filename).resolve())
        if filename.startswith(libraries) or frame.filename.startswith("<"):
            continue
        return not filename.startswith(runner)
    return False
