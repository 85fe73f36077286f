"""Bad input's exception, and the argparse parser that raises it. Nothing here imports Lightning: a command that
checks its own flags first (the sweep's) refuses a bad one at once, not after importing Lightning (4-6 s)."""

import argparse
from typing import NoReturn


class UsageError(Exception):
    """Bad input: reported as one line on stderr, exit status 2."""


class OneLineArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors are a :class:`UsageError` (one line, exit 2), not its usage text."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)
