"""Sweeps on a real PostgreSQL server: a throwaway cluster of Debian's postgresql package on 127.0.0.1,
a password user, and workers that share a study through LINEAR_PL_STORAGE=postgresql://...

The cluster runs as a user that is not root (PostgreSQL refuses root): ``postgres``, which the package
creates, by ``runuser``. It is stopped, and its directory removed, whatever happens.
"""

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from runner.commands import free_port, script_command
from runner.test_sweep import rows
from test_sweep import FAST, SPACE, trial_numbers

from linear_pl.sweep.command import rerun_command, sweep_main
from linear_pl.sweep.storage import open_storage, quiet_optuna

USER, DATABASE = "sweeper", "optuna"


def _binary(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


class Cluster:
    """A PostgreSQL cluster in a new directory, on 127.0.0.1:port, local connections trusted (its socket
    is in its own directory), TCP ones by password (SCRAM)."""

    def __init__(self) -> None:
        self.dir: Path | None = None
        self.started, self.databases, self.as_user = False, 0, []
        self.password = secrets.token_hex(16)  # in memory only: given to the workers by environment

    def start(self) -> None:
        initdb, self.pg_ctl = _binary("initdb"), _binary("pg_ctl")
        if initdb is None or self.pg_ctl is None:
            pytest.skip("PostgreSQL is not installed (no initdb, pg_ctl): apt-get install postgresql, as .ci/run does")
        if os.geteuid() == 0:  # the server refuses to run as root
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root, and there is no postgres user to run the PostgreSQL server as")
            if shutil.which("runuser") is None:
                pytest.skip("running as root, and there is no runuser to run the PostgreSQL server as postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        # Not under pytest's tmp_path: its directories are root's alone, and the server runs as postgres.
        self.dir = Path(tempfile.mkdtemp(prefix="linear_pl-postgres-"))
        if self.as_user:
            shutil.chown(self.dir, "postgres")
        self.data, self.port = self.dir / "data", free_port()
        self._run(initdb, "-D", str(self.data), "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256",
                  "-E", "UTF8", "--no-instructions")  # fmt: skip
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off"
        self.started = True  # from here on, stop() stops it
        self._run(self.pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.dir / "server.log"), "-w", "start")
        with self._admin() as connection:
            role = sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(USER), sql.Literal(self.password))
            connection.execute(role)

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(host=str(self.dir), port=self.port, user="postgres", dbname="postgres", autocommit=True)

    def _run(self, *command: str) -> None:
        done = subprocess.run([*self.as_user, *command], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{Path(command[0]).name} failed: {done.stdout}{done.stderr}")

    def new_database(self) -> str:
        """A new, empty database owned by the password user; its URL, password included."""
        self.databases += 1
        name = f"{DATABASE}_{self.databases}"
        with self._admin() as connection:
            database = sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(USER))
            connection.execute(database)
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        """SIGQUIT to the server, PostgreSQL's immediate shutdown, and a wait for its postmaster.pid to go: what
        ``pg_ctl -m immediate -w stop`` does, without a process for it."""
        pid_file = self.data / "postmaster.pid" if self.started else None
        if pid_file is not None and pid_file.is_file():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGQUIT)
            deadline = time.monotonic() + 120
            while pid_file.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres(request) -> Cluster:
    """A running cluster for this module's tests, stopped and removed after them whatever happens."""
    cluster = Cluster()
    request.addfinalizer(cluster.stop)
    cluster.start()
    return cluster


def database_trials(url: str, study: str) -> list[tuple[int, str, bool]]:
    """The study's trials as the database holds them: number, state, and whether it is a surplus."""
    query = """
        SELECT t.number, t.state, EXISTS (SELECT 1 FROM trial_user_attributes a
                                          WHERE a.trial_id = t.trial_id AND a.key = 'surplus')
        FROM trials t JOIN studies s ON s.study_id = t.study_id WHERE s.study_name = %s ORDER BY t.number"""
    with psycopg.connect(url) as connection:
        return [(n, state, surplus) for n, state, surplus in connection.execute(query, (study,))]


@pytest.mark.slow
def test_two_workers_started_at_once_share_a_study_on_postgresql(postgres, tmp_path):
    """The README's multi-machine command, twice at the same moment on an empty database: both finish, the
    study's 6 trials are counted in the database, and the password is in no file and no output line."""
    (tmp_path / "space.yaml").write_text(SPACE)
    url = postgres.new_database()
    env = {**os.environ, "LINEAR_PL_STORAGE": url, "OMP_NUM_THREADS": "1"}
    pipe = subprocess.PIPE
    command = script_command("sweep", "--space", "space.yaml", "--n_trials", "6", *FAST)
    workers = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=pipe, stderr=pipe, text=True) for _ in range(2)]
    outputs = [worker.communicate(timeout=600) for worker in workers]
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err
        assert "Traceback" not in err and "duplicate key" not in err
        assert f"kept in postgresql://{USER}:***@127.0.0.1:{postgres.port}/" in out.splitlines()[0]
    numbers = [trial_numbers(out) for out, _ in outputs]
    assert sorted(numbers[0] + numbers[1]) == [n for n, _, surplus in database_trials(url, "space") if not surplus]
    counted = [(n, state) for n, state, surplus in database_trials(url, "space") if not surplus]
    assert len(counted) == 6 and {state for _, state in counted} <= {"COMPLETE", "PRUNED"}, counted
    assert [int(r["number"]) for r in rows(tmp_path / "sweeps" / "space")] == [n for n, _ in counted]
    # The password: in no output line, and in no file of the sweep's or the server's (its log included).
    for out, err in outputs:
        assert postgres.password not in out + err
    files = [p for root in (tmp_path, postgres.dir) for p in Path(root).rglob("*") if p.is_file()]
    assert len(files) > 20 and not [p for p in files if postgres.password.encode() in p.read_bytes()]


def test_the_cluster_takes_the_password_and_refuses_another(postgres):
    url = postgres.new_database()
    with psycopg.connect(url) as connection:
        assert connection.execute("SELECT current_user").fetchone() == (USER,)
    wrong = url.replace(postgres.password, "not-the-password")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong)


def open_at_once(url: str, openers: int) -> list[str]:
    """``openers`` threads open the storage at the same instant (a barrier): Optuna's tables of an empty
    database created by all of them at once, closer together than two sweep commands' start-ups ever are.
    What each raised, if anything."""
    barrier, errors, opened = threading.Barrier(openers), [], []
    quiet_optuna()  # as the sweep is: warnings.catch_warnings, which open_storage uses, is not for threads

    def open_it() -> None:
        barrier.wait()
        try:
            opened.append(open_storage(url, Path("."), 10))
        except Exception as error:
            errors.append(str(error))

    threads = [threading.Thread(target=open_it) for _ in range(openers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for storage in opened:
        storage.engine.dispose()
    return errors


def test_workers_opening_an_empty_database_at_once_all_open_it(postgres):
    """Four openers at the same instant, on 5 empty databases: none fails. (Without the advisory lock,
    CREATE TABLE collides on PostgreSQL's catalog: "duplicate key value violates unique constraint
    pg_type_typname_nsp_index".)"""
    for _ in range(5):
        url = postgres.new_database()
        assert open_at_once(url, 4) == []
        with psycopg.connect(url) as connection:
            assert connection.execute("SELECT count(*) FROM version_info").fetchone() == (1,)


def test_a_password_given_by_flag_or_by_environment_is_in_no_file_and_no_output(
    postgres, tmp_path, capsys, monkeypatch
):
    """``--storage URL`` (the continue line repeats it, masked), then $LINEAR_PL_STORAGE, in this process."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "space.yaml").write_text(SPACE)
    url = postgres.new_database()
    shown = url.replace(f":{postgres.password}@", ":***@")
    assert sweep_main(["--space", "space.yaml", "--n_trials", "2", *FAST, "--storage", url]) == 0
    first = capsys.readouterr()
    assert f"kept in {shown}" in first.out.splitlines()[0]
    monkeypatch.setenv("LINEAR_PL_STORAGE", url)  # the README's advice for shared databases
    assert sweep_main(["--space", "space.yaml", "--n_trials", "3", *FAST]) == 0
    second = capsys.readouterr()
    assert ", 2 done;" in second.out.splitlines()[0] and len(rows(tmp_path / "sweeps" / "space")) == 3
    assert [state for _, state, _ in database_trials(url, "space")] == ["COMPLETE"] * 3
    for output in (first, second):
        assert postgres.password not in output.out + output.err
    files = [p for root in (tmp_path, postgres.dir) for p in Path(root).rglob("*") if p.is_file()]
    assert len(files) > 10 and not [p for p in files if postgres.password.encode() in p.read_bytes()]
    assert rerun_command(["--space", "s.yaml", "--storage", url], url).endswith(f"--storage '{shown}'")
