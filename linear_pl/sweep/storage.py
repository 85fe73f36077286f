"""Where a study lives: a journal file in its directory by default, or any storage URL, its password masked;
and the heartbeat by which a trial whose worker died is noticed and resumed.

One machine: Optuna's journal file, which several processes append to under a file lock (SQLite, under
several writers, answers "database is locked"). Several machines: a PostgreSQL or MySQL URL (Optuna's
RDB storage), or a journal file on a filesystem they share.

The heartbeat: while a trial runs, its worker records a heartbeat every ``--heartbeat`` seconds (Optuna's
own heartbeat thread, which ``study.optimize`` starts). A RUNNING trial silent for ``GRACE_BEATS``
heartbeats is taken as dead: Optuna's ``fail_stale_trials`` marks it FAIL and its stale-trial callback
queues the same params again (``ResumeDeadTrial``), which the sweep runs from the dead trial's last.ckpt.
The RDB storage has this built in (``heartbeat_interval``, ``grace_period``, and the database's clock).
Optuna's journal storage has none (a feature request, optuna/optuna#6615, was closed unmerged):
``HeartbeatJournalStorage`` adds it, keeping each heartbeat in the trial's system attrs, timed by the
worker's clock -- machines sharing a journal file need their clocks in step (NTP), as any lease does.
"""

import logging
import os
import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
import sqlalchemy
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import FrozenTrial, TrialState

from linear_pl.runner.errors import UsageError
from linear_pl.runner.internals import OPTUNA_TRIAL_FAILED_LOGGER, one_line, optuna_heartbeat_base
from linear_pl.sweep.flags import GRACE_BEATS, STORAGE_ENV

JOURNAL_NAME = "study.journal"
HEARTBEAT_KEY = "linear_pl:heartbeat"  # a journal trial's last heartbeat, time.time() of its worker
MAX_RESUMES = 3  # a trial whose worker keeps dying (out of memory, say) is left failed after this many
# Held by a worker while it creates Optuna's tables in an empty PostgreSQL database: two workers creating
# them at once collide on PostgreSQL's catalog (duplicate key on pg_type_typname_nsp_index).
ADVISORY_LOCK = 0x6C696E5F706C  # "lin_pl"
# Optuna's heartbeat is experimental, and says so on each use.
EXPERIMENTAL = (
    r"(Argument ``(heartbeat_interval|grace_period|heartbeat_stale_trial_callback)`` is an experimental feature"
    r"|([\w.]+\.)?(RetryHeartbeatStaleTrialCallback|fail_stale_trials) is experimental)"
)


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


class ResumeDeadTrial:
    """Optuna's stale-trial callback, queueing a dead trial's params again with its intermediate values and
    its retry history (``system_attrs["retry_history"]``: the dead trials it continues, oldest first); the
    dead trial's last heartbeat is not carried over, so that the new trial is not itself taken as dead
    before its first one."""

    def __init__(self) -> None:
        self.retry = RetryHeartbeatStaleTrialCallback(max_retry=MAX_RESUMES, inherit_intermediate_values=True)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        trial.system_attrs = {key: value for key, value in trial.system_attrs.items() if key != HEARTBEAT_KEY}
        self.retry(study, trial)


class HeartbeatJournalStorage(JournalStorage, optuna_heartbeat_base()):
    """Optuna's journal storage with the heartbeat its RDB storage has."""

    def __init__(
        self,
        backend: JournalFileBackend,
        heartbeat_interval: int,
        grace_period: int,
        stale_trial_callback: Callable[[optuna.Study, FrozenTrial], None],
    ) -> None:
        super().__init__(backend)
        self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period
        self.stale_trial_callback = stale_trial_callback

    def record_heartbeat(self, trial_id: int) -> None:
        self.set_trial_system_attr(trial_id, HEARTBEAT_KEY, time.time())

    def stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        running = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        return [
            self.get_trial_id_from_study_id_trial_number(study_id, t.number)
            for t in running
            if (beat := t.system_attrs.get(HEARTBEAT_KEY)) is not None and now - beat > self.grace_period
        ]

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self.stale_trial_callback


def open_storage(url: str | None, study_dir: Path, heartbeat: int) -> BaseStorage:
    """The study's storage, with a heartbeat every ``heartbeat`` seconds: a URL with a scheme is an RDB
    storage (postgresql://, mysql://, sqlite:///), anything else a journal file's path; None is the study
    directory's own journal file."""
    beat = {"heartbeat_interval": heartbeat, "grace_period": GRACE_BEATS * heartbeat}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=EXPERIMENTAL, category=optuna.exceptions.ExperimentalWarning)
        callback = ResumeDeadTrial()
        if url is not None and "://" in url:
            try:
                with tables_lock(url):
                    return RDBStorage(url, heartbeat_stale_trial_callback=callback, **beat)
            except Exception as error:  # a driver that is not installed, a server that does not answer, ...
                reason = masked(one_line(str(error.__cause__ or error)), url)
                raise UsageError(f"--storage {masked(url, url)}: cannot open it ({reason})") from None
    path = Path(url) if url is not None else study_dir / JOURNAL_NAME
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return HeartbeatJournalStorage(JournalFileBackend(str(path)), stale_trial_callback=callback, **beat)
    except OSError as error:
        raise UsageError(f"--storage {path}: cannot open it ({error.strerror})") from None


class tables_lock:  # noqa: N801 -- used as a context manager, like a function
    """For PostgreSQL: a session advisory lock held while Optuna's RDB storage creates its tables (if they
    are missing), so that workers started at once on an empty database create them one after another;
    the second finds them made. Released when its connection closes, whatever happens. Other databases:
    nothing (SQLite serializes its writers itself; MySQL is not tested here)."""

    def __init__(self, url: str) -> None:
        self.engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        self.connection = None

    def __enter__(self) -> None:
        if self.engine.dialect.name == "postgresql":
            self.connection = self.engine.connect()
            self.connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_LOCK})

    def __exit__(self, *exc_info: object) -> None:
        if self.connection is not None:
            self.connection.close()  # the lock goes with the session
        self.engine.dispose()


def quiet_optuna() -> None:
    """Optuna's own INFO lines (a line per trial, "A new study created") would repeat the sweep's; the
    pruning callback's warning of a metric never logged repeats the run's own error line; Optuna's
    warning of a failed trial repeats its trial line; and the heartbeat's functions are experimental."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", message=r"The metric '.*' is not in the evaluation logs for pruning")
    warnings.filterwarnings("ignore", message=EXPERIMENTAL, category=optuna.exceptions.ExperimentalWarning)
    # A trial resumed from a checkpoint taken before its last report reports that epoch again.
    warnings.filterwarnings("ignore", message=r"The reported value is ignored because this `step=\d+` is already")
    optimize_logger = logging.getLogger(OPTUNA_TRIAL_FAILED_LOGGER)
    if TrialLinesOnly() not in optimize_logger.filters:
        optimize_logger.addFilter(TrialLinesOnly())


class TrialLinesOnly:
    """Drops Optuna's "Trial N failed with ..." warnings: the sweep prints its own line for every trial."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not re.match(r"Trial \d+ failed with ", record.getMessage())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TrialLinesOnly)

    def __hash__(self) -> int:
        return 0
