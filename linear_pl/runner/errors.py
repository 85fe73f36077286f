"""Bad input, said in one line: the exception types a run ends on with exit status 2 (or 1 for its own files),
and an argparse parser that raises rather than prints. Imports nothing beyond the standard library, so that a
command can refuse a bad flag before it imports Lightning or Optuna."""

import argparse


class UsageError(Exception):
    """Bad input: reported as one line on stderr, exit status 2."""


class RunFilesError(OSError):
    """A file the run writes (a checkpoint, results.json) could not be written: a full disk, a lost mount."""

    @classmethod
    def of(cls, error: OSError) -> "RunFilesError":
        return cls(error.errno, error.strerror or str(error), error.filename)


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse prints the usage and exits; this raises :class:`UsageError` with argparse's message instead."""

    def error(self, message: str) -> None:
        raise UsageError(message)


def root_cause(error: BaseException) -> BaseException:
    """What was raised first, under any wrapping (jsonargparse wraps what a link or a constructor raised)."""
    while error.__cause__ is not None:
        error = error.__cause__
    return error
