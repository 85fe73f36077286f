"""Where a study lives: a journal file in its directory by default, or any storage URL, its password masked.

One machine: Optuna's journal file, which several processes append to under a file lock (SQLite, under
several writers, answers "database is locked"). Several machines: a PostgreSQL or MySQL URL (Optuna's
RDB storage), or a journal file on a filesystem they share.
"""

import os
import re
import warnings
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage

from linear_pl.runner.errors import UsageError
from linear_pl.runner.internals import one_line

# A shared database's URL carries its password: from this variable it appears in no command line.
STORAGE_ENV = "LINEAR_PL_STORAGE"
JOURNAL_NAME = "study.journal"


def storage_url(flag: str | None) -> str | None:
    """The storage URL: ``--storage``, else $LINEAR_PL_STORAGE, else None (the study directory's journal)."""
    return flag or os.environ.get(STORAGE_ENV) or None


def _password(url: str | None) -> str | None:
    found = re.match(r"[\w+.-]+://[^:/@]*:([^@]*)@", url or "")
    return found[1] if found and found[1] else None


def masked(text: str, url: str | None) -> str:
    """``text`` with the password of ``url`` (``scheme://user:PASSWORD@host/db``) replaced by ***."""
    password = _password(url)
    return text.replace(f":{password}@", ":***@").replace(password, "***") if password else text


def describe(url: str | None, study_dir: Path) -> str:
    """Where the study is kept, as it may be printed."""
    return str(study_dir / JOURNAL_NAME) if url is None else masked(url, url)


def open_storage(url: str | None, study_dir: Path) -> BaseStorage:
    """The study's storage: a URL with a scheme is an RDB storage (postgresql://, mysql://, sqlite:///),
    anything else a journal file's path; None is the study directory's own journal file."""
    if url is not None and "://" in url:
        try:
            return RDBStorage(url)
        except Exception as error:  # a driver that is not installed, a server that does not answer, ...
            reason = masked(one_line(str(error.__cause__ or error)), url)
            raise UsageError(f"--storage {masked(url, url)}: cannot open it ({reason})") from None
    path = Path(url) if url is not None else study_dir / JOURNAL_NAME
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    except OSError as error:
        raise UsageError(f"--storage {path}: cannot open it ({error.strerror})") from None


def quiet_optuna() -> None:
    """Optuna's own INFO lines (a line per trial, "A new study created") would repeat the sweep's; and
    the pruning callback's warning of a metric never logged repeats the run's own error line."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", message=r"The metric '.*' is not in the evaluation logs for pruning")
