"""A warm ``python`` for the tests' script processes: ``python scripts/train.py ...`` without the 3-4 s
of importing Lightning each time.

Most of a script test's time here was Python importing torch and Lightning (and, with the test extra,
scipy through torchmetrics) before the script did anything. A test that starts a script still starts a
process (its exit status, its signals, its output are what it tests), but the process is forked from a
server that has already imported the libraries the scripts import (``PRELOAD``), nothing of this project.

How it runs: ``warm_python()`` writes ``python`` in a directory of its own, which runs this file as the
client (``-S``: no site-packages, it starts in milliseconds). The client hands its argv, environment,
working directory and its stdin, stdout and stderr (the file descriptors themselves) to the server over
a Unix socket, and the server forks. The child takes the descriptors, the directory and the environment,
reseeds the random generators (a fresh process draws new seeds), and runs the script as ``__main__``, as
``python`` would, then exits as Python does (threads joined, atexit handlers, streams flushed). The
client relays SIGINT, SIGTERM and SIGHUP to the child, and ends as the child ended: the same status, or
killed by the same signal. When the client dies (SIGKILL), the server kills the child.

What differs from a fresh ``python``, and how the tests keep it from mattering:
- The server's imports happened before the script's. Anything they printed is printed again by each
  child, first (nothing, today, with every warning on). The server is started with the environment the
  child asks for in every variable read at import (``IMPORT_TIME``: PYTHON*, OMP_*, CUDA*, ...): a
  request with other values gets a server of its own.
- The script runs as the server's child: its pid is not Popen's, it is in the server's process group
  (a signal to the caller's group misses it), and a SIGKILL of the client reaches it a moment later,
  from the server. A test that SIGKILLs the script kills the script's own pid (``script_pid``); one
  that signals a process group (DDP's Ctrl-C) starts the real interpreter.
- Python's hash seed is the server's, shared by its children (a fresh process draws one).
- Only ``python FILE.py args`` and ``python -m MODULE args`` are served; anything else (``-c``, options)
  runs the real interpreter, as do tests that check what a fresh process imports. In a warm script
  ``sys.executable`` is the warm ``python``: the processes it starts that way (DDP's other ranks, sweep
  workers, the benchmark's commands) are warm too, and a ``-c`` from it still gets the real one.
"""

import atexit
import fcntl
import gc
import hashlib
import importlib
import json
import os
import random
import runpy
import selectors
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
from pathlib import Path

PRELOAD = ("torch", "lightning", "lightning.pytorch", "lightning.pytorch.cli", "jsonargparse", "numpy", "yaml")
# Variables read at import (by prefix). The rank ones: Lightning's rank_zero_only takes its rank from them
# once, at import; a server started by DDP's rank 1 made every script forked from it rank 1, which logs
# nothing ("GPU available", TensorBoard), or a rank 1 forked from a rank 0 server logged as rank 0.
IMPORT_TIME = ("PYTHON", "OMP_", "MKL_", "KMP_", "OPENBLAS", "CUDA", "NVIDIA", "TORCH", "PYTORCH", "PL_",
               "LIGHTNING", "LD_", "NCCL", "GLOO", "JSONARGPARSE", "RANK", "LOCAL_RANK", "SLURM_", "JSM_")  # fmt: skip
# ... except these, read when a run seeds itself: seed_everything sets them in every process that trains
# in-process (a pytest worker), and with them in the key each seed a test process had used got its own server.
RUN_TIME = ("PL_GLOBAL_SEED", "PL_SEED_WORKERS")
DIR_VARIABLE = "WARM_PYTHON_DIR"  # where the servers' sockets are; unset: every command runs the real python
# Set to a file's path, the client writes the script's pid there: a test that SIGKILLs the script (not its
# client, whose death reaches the script only through the server) kills that pid. See tests/conftest.py's script_pid.
PID_FILE_VARIABLE = "WARM_PYTHON_PID_FILE"
RELAYED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Set (with OMP_NUM_THREADS=1) by tests/conftest.py when it chose one thread per test process; the
# README's sessions then drop both and run with a user's default threads.
ONE_THREAD_BY_THE_SUITE = "TESTS_ONE_THREAD"


def warm_python() -> str:
    """The path of the ``python`` to run scripts with (``[warm_python(), "scripts/train.py", ...]``).

    Its directory (the servers' sockets, the client as ``python`` for a PATH) is made once per test
    process, set in the environment for the processes it starts, and removed, servers killed, when the
    process ends; a process that finds it set (pytest run by a test) uses it.
    """
    directory = os.environ.get(DIR_VARIABLE)
    if not directory or not os.path.isdir(directory):
        directory = tempfile.mkdtemp(prefix="warm_python_")
        os.environ[DIR_VARIABLE] = directory
        atexit.register(stop_servers, Path(directory))
        (Path(directory) / "owner").write_text(str(os.getpid()))  # a server outlives no killed pytest
    shim = Path(directory) / "python"
    if not shim.exists():
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "{Path(__file__).resolve()}" "$@"\n')
        shim.chmod(0o755)
    return str(shim)


def stop_servers(directory: Path) -> None:
    """Kill the servers started under ``directory`` (their pids are in ``*.pid``) and remove it."""
    for pid_file in directory.glob("*.pid"):
        try:
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
        except (ValueError, ProcessLookupError):
            pass
    shutil.rmtree(directory, ignore_errors=True)


# ---- the client: stdlib only, no site-packages ----


def real_python(args: list[str]) -> None:
    os.execv(sys.executable, [sys.executable, *args])


def served(args: list[str]) -> bool:
    """Whether a warm child runs these arguments: ``FILE.py ...`` or ``-m MODULE ...``."""
    if args[:1] == ["-m"]:
        return len(args) > 1
    return bool(args) and args[0].endswith(".py") and os.path.isfile(args[0])


def socket_name(env: dict) -> str:
    """The socket's name of the server for ``env``: one per set of values of the import-time variables."""
    key = sorted((k, v) for k, v in env.items() if k.startswith(IMPORT_TIME) and k not in RUN_TIME)
    return f"{hashlib.sha1(json.dumps(key).encode()).hexdigest()[:16]}.sock"


def server_socket(directory: Path) -> Path:
    """The socket of the server for this environment's import-time variables; started if not running."""
    path = directory / socket_name(os.environ)
    if path.exists():
        return path
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one server per socket, however many clients start at once
        if not path.exists():
            server = start_server(path)
            path.with_suffix(".pid").write_text(str(server))
            deadline = time.monotonic() + 600  # a bound only: importing takes seconds, more on a busy machine
            while not path.exists():
                if os.waitpid(server, os.WNOHANG)[0] or time.monotonic() > deadline:
                    sys.exit(f"warm_python: the server did not start: {path.with_suffix('.out').read_text()}")
                time.sleep(0.02)
    return path


def connect(directory: Path) -> socket.socket:
    """A connection to this environment's server. Nothing listening on its socket (the server died): another
    is started. Any other failure (the socket replaced meanwhile, a signal) is asked again."""
    deadline = time.monotonic() + 600  # a bound only
    while True:
        path = server_socket(directory)
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(str(path))
            return conn
        except ConnectionRefusedError:
            conn.close()
            path.unlink(missing_ok=True)
        except OSError as error:
            conn.close()
            if time.monotonic() > deadline:
                sys.exit(f"warm_python: no connection to the server at {path}: {error}")
            time.sleep(0.05)


def start_server(path: Path) -> int:
    """Fork and exec the server in a session of its own, its output to ``path``.out; returns its pid."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            log = os.open(path.with_suffix(".out"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.execv(sys.executable, [sys.executable, __file__, "--serve", str(path)])
        finally:
            os._exit(127)
    return pid


def client(args: list[str]) -> None:
    directory = os.environ.get(DIR_VARIABLE)
    if not directory or not served(args):
        real_python(args)
    conn = connect(Path(directory))
    # Relayed from before the request: the script may print (and be signalled) before its pid is known
    # here; a signal until then waits for the pid.
    child, pending = None, []

    def relay(signum: int, frame: object) -> None:
        if child is None:
            pending.append(signum)
        else:
            os.kill(child, signum)

    for signum in RELAYED:
        signal.signal(signum, relay)
    request = json.dumps({"argv": args, "env": dict(os.environ), "cwd": os.getcwd()}).encode()
    socket.send_fds(conn, [len(request).to_bytes(8, "big") + request], [0, 1, 2])
    reader = conn.makefile("r")
    line = reader.readline()
    if not line:  # the server died before it forked: nothing ran
        sys.exit("warm_python: the server closed the connection; see its .out file in " + directory)
    child = int(line)
    if os.environ.get(PID_FILE_VARIABLE):
        Path(os.environ[PID_FILE_VARIABLE]).write_text(f"{child}\n")
    for signum in pending:
        os.kill(child, signum)
    line = reader.readline()
    end_as(int(line) if line else -signal.SIGKILL)  # the server died: as if the child was killed


def end_as(status: int) -> None:
    """End this process with ``status``; a negative one, killed by that signal (as the child ended)."""
    if status < 0:
        if -status != signal.SIGKILL:  # the one whose handler cannot be set, nor needs to be
            signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    os._exit(status)


# ---- the server ----


def serve(path: Path) -> None:
    # Anything the imports print (a warning) is printed again by every child, as a fresh process would.
    # Caught at the descriptors: sys.stdout and sys.stderr stay the objects the imports saw (Lightning's
    # log handler keeps the stderr it found), and in a child they write to the client's descriptors.
    printed = tempfile.TemporaryFile()
    saved = os.dup(1), os.dup(2)
    os.dup2(printed.fileno(), 1)
    os.dup2(printed.fileno(), 2)
    for module in PRELOAD:
        importlib.import_module(module)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(saved[0], 1)
    os.dup2(saved[1], 2)
    printed.seek(0)
    preamble = printed.read().decode(errors="backslashreplace")

    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path) + ".tmp")
    server.listen(64)
    os.replace(str(path) + ".tmp", path)  # clients wait for the socket's name: it appears listening
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(server, selectors.EVENT_READ, "accept")
    selector.register(wake_r, selectors.EVENT_READ, "child")
    conns: dict[int, socket.socket] = {}  # child pid -> its client's connection
    while owner_alive(path.parent):  # else nothing will ask again
        for key, _ in selector.select(timeout=5):
            if key.data == "accept":
                conn, _ = server.accept()
                try:
                    pid = start_child(conn, preamble, [server, selector, wake_r, wake_w, *conns.values()])
                except (OSError, ValueError):  # a client gone or garbled before the fork: nothing started
                    conn.close()
                    continue
                conns[pid] = conn
                try:
                    conn.sendall(f"{pid}\n".encode())
                except OSError:  # the client is already gone: so is its child (reaped below)
                    os.kill(pid, signal.SIGKILL)
                selector.register(conn, selectors.EVENT_READ, pid)
            elif key.data == "child":
                os.read(wake_r, 4096)
                while True:
                    try:
                        pid, status = os.waitpid(-1, os.WNOHANG)
                    except ChildProcessError:
                        break
                    if pid == 0:
                        break
                    conn = conns.pop(pid, None)
                    if conn is not None:
                        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
                        try:
                            conn.sendall(f"{code}\n".encode())
                        except OSError:
                            pass  # its client is gone
                        if conn.fileno() in selector.get_map():
                            selector.unregister(conn)
                        conn.close()
            elif not key.fileobj.recv(1):  # the client died (SIGKILL): so does its child
                selector.unregister(key.fileobj)
                try:
                    os.kill(key.data, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def owner_alive(directory: Path) -> bool:
    """Whether the test process that made ``directory`` still runs (killed, it ran no atexit: tidy up)."""
    try:
        os.kill(int((directory / "owner").read_text()), 0)
        return True
    except (OSError, ValueError):
        shutil.rmtree(directory, ignore_errors=True)
        return False


def start_child(conn: socket.socket, preamble: str, inherited: list) -> int:
    header, fds, _, _ = socket.recv_fds(conn, 8, 3)
    size = int.from_bytes(header, "big")
    data = b""
    while len(data) < size:
        data += conn.recv(size - len(data))
    request = json.loads(data)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        for fd in fds:
            os.close(fd)
        return pid
    # The child: the client's descriptors, directory and environment; Python's own signal handling.
    try:
        signal.set_wakeup_fd(-1)
        for item in [conn, *inherited]:
            if isinstance(item, int):
                os.close(item)
            elif isinstance(item, socket.socket):
                os.close(item.detach())
            else:  # the selector
                item.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        run_script(request["argv"], preamble)
    finally:
        os._exit(1)  # run_script never returns; this is for an error in the lines above


def run_script(argv: list[str], preamble: str) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # sys.stdin, stdout and stderr are the server's objects on descriptors 0-2, now the client's (empty:
    # the server flushes before it forks). Python line-buffers stdout on a terminal only.
    sys.stdout.reconfigure(line_buffering=os.isatty(1))
    random.seed()
    sys.modules["numpy"].random.seed()  # imported by the server (PRELOAD), as torch
    sys.modules["torch"].seed()
    # The processes the script starts with sys.executable (DDP's other ranks, sweep workers) are warm too.
    sys.executable = os.path.join(os.environ[DIR_VARIABLE], "python")
    module = argv[1] if argv[0] == "-m" else None
    sys.argv = list(argv[1:] if module else argv)  # run_module puts the module's file first, as -m does
    sys.path[0] = os.getcwd() if module else os.path.dirname(os.path.abspath(argv[0]))
    if preamble:
        sys.stderr.write(preamble)
    status = 0
    try:
        if module:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as done:
        if done.code is None or isinstance(done.code, int):
            status = done.code or 0
        else:
            print(done.code, file=sys.stderr)
            status = 1
    except KeyboardInterrupt:
        traceback.print_exc()
        status = -signal.SIGINT  # Python ends a process so: killed by SIGINT
    except BaseException:
        traceback.print_exc()
        status = 1
    finish_as_exit_would()
    end_as(status)


def finish_as_exit_would() -> None:
    """What Python's exit does that a script's files and threads need, before the child ends at once (end_as):
    stop and wait for threads (after the hooks that stop a thread pool), run the atexit handlers, flush files."""
    import _io  # noqa: PLC0415 -- the C base of every file object

    threading = sys.modules["threading"]
    if any(not thread.daemon for thread in threading.enumerate() if thread is not threading.main_thread()):
        threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (obj for obj in gc.get_objects() if issubclass(type(obj), _io._IOBase)):
        try:
            if not stream.closed:
                stream.flush()
        except (OSError, ValueError):
            pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(Path(sys.argv[2]))
    else:
        client(sys.argv[1:])
