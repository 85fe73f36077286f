"""The warm ``python`` the script tests run (tests/warm_python.py) behaves as a fresh one where they look:
exit status, output, directory, environment, signals, a SIGKILLed client, fresh random seeds."""

import os
import signal
import subprocess
import time
from pathlib import Path

from warm_python import DIR_VARIABLE, PID_FILE_VARIABLE, socket_name

from conftest import PYTHON, script_pid

SCRIPT = """import os, sys, random, torch
print("argv", sys.argv[1:], "cwd", os.getcwd(), "env", os.environ.get("ASKED"), "path0", sys.path[0])
print("seeds", random.random(), torch.rand(1).item())
print("on stderr", file=sys.stderr)
line = sys.stdin.readline().strip()
if line == "sleep":
    print("pid", os.getpid(), flush=True)
    import time; time.sleep(600)
if line == "raise":
    raise ValueError("from the script")
sys.exit(int(line or 0))
"""


def run(tmp_path, stdin: str = "", env: dict | None = None) -> subprocess.CompletedProcess:
    (tmp_path / "script.py").write_text(SCRIPT)
    env = {**os.environ, **(env or {})}
    return subprocess.run([PYTHON, "script.py", "a", "b c"], cwd=tmp_path, input=stdin, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_output_status_directory_environment_and_arguments_are_the_callers(tmp_path):
    done = run(tmp_path, "3\n", {"ASKED": "yes"})
    assert done.returncode == 3
    assert done.stdout.splitlines()[0] == f"argv ['a', 'b c'] cwd {tmp_path} env yes path0 {tmp_path}"
    assert done.stderr == "on stderr\n"  # and nothing the server's imports printed
    assert run(tmp_path, "0\n").returncode == 0


def test_an_exception_prints_its_traceback_and_exits_1(tmp_path):
    done = run(tmp_path, "raise\n")
    assert done.returncode == 1
    assert 'script.py", line 10' in done.stderr and done.stderr.rstrip().endswith("ValueError: from the script")


def test_each_process_draws_its_own_random_seeds(tmp_path):
    seeds = {run(tmp_path).stdout.splitlines()[1] for _ in range(3)}
    assert len(seeds) == 3


def sleeping(tmp_path, env: dict | None = None) -> tuple[subprocess.Popen, int]:
    """The script started and asleep: its client, and the pid the script itself runs as."""
    (tmp_path / "script.py").write_text(SCRIPT)
    proc = subprocess.Popen([PYTHON, "script.py"], cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})  # fmt: skip
    proc.stdin.write("sleep\n")
    proc.stdin.flush()
    line = ""
    while not line.startswith("pid"):
        line = proc.stdout.readline()
    return proc, int(line.split()[1])


def test_sigint_reaches_the_script_and_the_status_says_so(tmp_path):
    proc, child = sleeping(tmp_path)
    assert child != proc.pid  # the script runs in the server's child, not in the client
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGINT and "KeyboardInterrupt" in err  # as python ends on Ctrl-C


def test_a_sigkilled_client_takes_its_script_with_it(tmp_path):
    proc, child = sleeping(tmp_path)
    started = stat(child)[19]  # pids wrap here (pid_max 32768): the same pid later may be another process
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 60  # a bound only: the server kills it as soon as it sees the client gone
    while alive(child, started):
        assert time.monotonic() < deadline, "the script outlived its client"
        time.sleep(0.05)


def test_a_sigkilled_script_ends_its_client_so_and_its_pid_is_told(tmp_path):
    pid_file = tmp_path / "script.pid"
    proc, child = sleeping(tmp_path, {PID_FILE_VARIABLE: str(pid_file)})
    assert script_pid(pid_file, proc) == child  # the pid the client tells is the script's own
    os.kill(child, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL  # as python killed so ends


def stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command's name: state, ppid, ..., [19] the start time."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def alive(pid: int, started: str) -> bool:
    try:
        fields = stat(pid)
    except FileNotFoundError:
        return False
    return fields[19] == started and fields[0] != "Z"  # a zombie has ended


def test_a_module_runs_as_with_dash_m_and_what_a_script_starts_is_warm_too(tmp_path):
    """``-m`` (the sweep's workers) and sys.executable (DDP's other ranks) run warm, as python would run them."""
    (tmp_path / "mod.py").write_text("import sys\nprint(__name__, sys.argv, sys.path[0])\nsys.exit(4)\n")
    done = subprocess.run([PYTHON, "-m", "mod", "x"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 4 and done.stdout == f"__main__ {[str(tmp_path / 'mod.py'), 'x']} {tmp_path}\n"
    (tmp_path / "starts.py").write_text(
        "import subprocess, sys\n"
        "print(subprocess.run([sys.executable, 'script.py'], capture_output=True, text=True).stdout, end='')\n"
    )
    (tmp_path / "script.py").write_text("import sys; print('lightning' in sys.modules)")
    started = subprocess.run([PYTHON, "starts.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert started.returncode == 0 and started.stdout == "True\n", started.stderr


def test_anything_but_a_script_runs_the_real_interpreter(tmp_path):
    done = subprocess.run([PYTHON, "-c", "import sys; print('lightning' in sys.modules)"], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0 and done.stdout == "False\n"
    (tmp_path / "script.py").write_text("import sys; print('lightning' in sys.modules)")
    warm = subprocess.run([PYTHON, "script.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert warm.stdout == "True\n"  # the one thing a script sees differently: what is already imported


def server_pid_file(env: dict) -> Path:
    """Where the server for ``env`` (started by its first script) keeps its pid."""
    return (Path(os.environ[DIR_VARIABLE]) / socket_name(env)).with_suffix(".pid")


def test_a_server_that_died_is_replaced(tmp_path):
    """It leaves its socket behind: the next script starts a new server. (This variable, read at import as
    far as the server knows, gives the test a server of its own.)"""
    own = {"PYTHON_WARM_TEST": str(tmp_path)}
    assert run(tmp_path, "0\n", own).returncode == 0
    pid_file = server_pid_file({**os.environ, **own})
    server = int(pid_file.read_text())
    started = stat(server)[19]
    os.kill(server, signal.SIGKILL)
    deadline = time.monotonic() + 60  # a bound only
    while alive(server, started):
        assert time.monotonic() < deadline, "the killed server lives on"
        time.sleep(0.05)
    assert pid_file.with_suffix(".sock").exists()  # left behind
    assert run(tmp_path, "5\n", own).returncode == 5
    replacement = int(pid_file.read_text())
    assert replacement != server
    os.kill(replacement, signal.SIGKILL)  # this test's own: not kept for the rest of the suite


def test_a_script_never_takes_its_rank_from_the_server(tmp_path):
    """Lightning's rank_zero_only reads RANK/LOCAL_RANK once, at import: DDP's rank 1 gets a server of its own,
    and a script after it is rank 0 again. A seed, which a run sets and reads later, does not part them."""
    rank_script = "from lightning.fabric.utilities import rank_zero_only; print(rank_zero_only.rank)"
    (tmp_path / "rank.py").write_text(rank_script)
    own = {"PYTHON_WARM_TEST": str(tmp_path)}  # servers of this test's own

    def rank(env: dict) -> str:
        done = subprocess.run([PYTHON, "rank.py"], cwd=tmp_path, env={**os.environ, **own, **env},
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    try:
        assert rank({"LOCAL_RANK": "1"}) == "1\n"  # the first: it starts a server
        assert rank({}) == "0\n"
        assert socket_name({**own, "PL_GLOBAL_SEED": "3"}) == socket_name(own)
    finally:  # this test's servers are not kept for the rest of the suite
        for env in ({**os.environ, **own, "LOCAL_RANK": "1"}, {**os.environ, **own}):
            if (pid_file := server_pid_file(env)).exists():
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
