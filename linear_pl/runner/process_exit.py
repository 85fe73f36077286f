"""Ending a command's process: everything a normal exit does for the user's files, without the part that costs.

Python's own exit tears down every module the process imported. After ``import lightning`` that is
over 3,000 modules and their objects, in C, and takes 1.2-1.4 s here (``python -c "import lightning"``
takes 4.8 s, 3.5 s ending so) -- more than the fit of a small model. So the scripts end with
:func:`exit_now`: it stops and waits for the threads and runs the ``atexit`` handlers as Python's exit does,
flushes every open file, and then ends the process at once (``os._exit``). What it skips is the
teardown of objects, which writes nothing; a ``__del__`` that writes is the one thing it would not
run, and Lightning and torch have none that the run relies on (their loggers and writers close at
the end of ``fit``).
"""

import _io  # the C base of every file object: io.IOBase's isinstance is an ABC's, 4x slower
import atexit
import gc
import os
import sys
import threading
from typing import NoReturn


def exit_now(status: int | None) -> NoReturn:
    """End the process with ``status``, as ``sys.exit`` would, less the teardown of its objects."""
    finish_as_exit_would()
    os._exit(status or 0)


def finish_as_exit_would() -> None:
    """What Python's exit does that a user's files and threads need: stop and wait for threads, run the
    atexit handlers, flush every open file."""
    if any(not thread.daemon for thread in threading.enumerate() if thread is not threading.main_thread()):
        # Only where a thread is left: internals imports Lightning, which a bad flag's exit never needs.
        from linear_pl.runner.internals import shut_down_threads  # noqa: PLC0415

        shut_down_threads()
    atexit._run_exitfuncs()  # logging's flush, and any handler the user registered
    # type(), not isinstance: an object may warn when its __class__ is read (torch.distributed.reduce_op does).
    for stream in (obj for obj in gc.get_objects() if issubclass(type(obj), _io._IOBase)):
        try:
            if not stream.closed:
                stream.flush()  # what closing a file object at exit would write
        except (OSError, ValueError):
            pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: Python's exit would lose it too
            pass
