"""Ctrl-C or SIGTERM during fit: finish the step (in a long epoch) or the epoch under way, save, stop.

Lightning's own handling stops where it is and saves nothing. Here the first signal is only recorded; the
checkpoints stop training at the next point where they can save. A second signal gets Lightning's handling:
stop now, save on the exception.
"""

import signal
import threading
from typing import NoReturn

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException


class Interrupted(SystemExit):
    """Raised after a step to stop on SIGINT (SIGTERM raises Lightning's SIGTERMException): the fit
    ends as on Lightning's own interrupt, and the run's report follows."""


class StopSignal:
    """Records the first SIGINT or SIGTERM (``received``) while it listens, then gives the handlers back."""

    def __init__(self) -> None:
        self.received: int | None = None  # SIGINT or SIGTERM, once one has asked training to stop
        self._handlers: dict[int, object] = {}

    def listen(self) -> None:
        if threading.current_thread() is threading.main_thread():  # the only thread that may set handlers
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._handlers[signum] = signal.signal(signum, self._receive)

    def _receive(self, signum: int, frame: object) -> None:
        self.received = signum
        self.restore()

    def restore(self) -> None:
        """Give the handlers that were there back (a second signal then stops at once)."""
        for signum, handler in self._handlers.items():
            signal.signal(signum, handler)
        self._handlers = {}

    def agreed(self, trainer: L.Trainer) -> bool:
        """Whether any DDP rank received a signal: then every rank stops (a collective, every rank calls it).
        A rank that received none stops as on SIGTERM."""
        stop = trainer.strategy.reduce_boolean_decision(self.received is not None, all=False)
        if stop:
            self.received = self.received or signal.SIGTERM
            self.restore()
        return stop

    def stop_now(self) -> NoReturn:
        """End the fit here, as Lightning ends it on its own interrupt."""
        raise SIGTERMException() if self.received == signal.SIGTERM else Interrupted()
