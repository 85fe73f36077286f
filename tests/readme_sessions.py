"""Run the shell sessions shown in README.md and docs/*.md and compare their output (a Sybil parser).

Only code blocks fenced as ```console are tested. In one, a line starting with ``$ `` is a command
(continued onto the next line while it ends in a backslash); the lines after it, up to the next
``$ `` line or the block's end, are its expected output. Each command is one pytest test, named after
its line by Sybil (``README.md::line:40,column:1``, ``docs/example.md::line:12,column:1``).

How a command runs:
- with bash, exactly as written, with the venv's bin/ first on PATH (``python``, ``linear-pl``, ...),
  pytest's environment otherwise, but with PYTHONWARNINGS and make's variables (MAKELEVEL, ...) unset,
  and torch's default threads (the suite's one thread per test process is not a user's; idle threads
  sleep, OMP_WAIT_POLICY=PASSIVE, which changes no number);
- in a fresh directory per block, holding symlinks to everything at the top of the repository
  (scripts/, examples/, linear_pl/, README.md, docs/, ...) except lightning_logs/, whichever file the
  block is in: the commands see the repository as it is, run from its root, and whatever they write
  at the top (lightning_logs/ when no --default_root_dir is given) lands in that directory, not in
  the repository, and starts at version_0 every time;
- the commands of one block run in order in that one directory. A test run on its own (``-k``, ``--lf``)
  first runs, unchecked, the commands of its block before it, so that it sees the same state;
- ``$?`` at the start of a command is the exit status of the block's previous command, so that
  ``$ echo $?`` checks it. An exit status is not checked otherwise: the output is.

What is compared: the command's stdout (a command that redirects stderr, e.g. ending in ``2>&1``, gets
it in its stdout), trailing whitespace of each line and trailing blank lines ignored. In the expected
text, three things are not literal (keep this list short):
- a line of exactly ``...`` matches any number of lines, none included;
- a timing, a number or range followed by `` s`` or ``s`` (``7.4 s``, ``0.21-0.25 s``, pytest's
  ``in 1.76s``), matches any number or range followed by `` s`` or ``s``;
- a measured number, one written with a decimal point or an exponent (``0.9741``, ``9.92e-05``),
  matches any number within ``RTOL`` of it, or ``ATOL`` (``math.isclose``): float32 training rounds
  differently on another processor (MKL picks other kernels) or with other threads, and a fit carries
  the difference on. A number without either (an epoch, a count, a class, a version) is literal.
  Figures that float32 does not fix at all, such as which trials a sweep prunes, are left out of the
  quoted output (``...``) or shown by what they mean.
"""

import difflib
import math
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from sybil import Document, Example, Region
from sybil.parsers.markdown.lexers import FencedCodeBlockLexer

PROMPT = "$ "
ELLIPSIS = "..."
NUMBER = r"\d+(?:\.\d+)?"
TIMING = re.compile(rf"{NUMBER}(?:-{NUMBER})? ?s\b")  # in the expected text
ANY_TIMING = rf"{NUMBER}(?:-{NUMBER})? ?s\b"  # what it matches in the actual text
MEASURED = re.compile(r"-?\d+(?:\.\d+(?:e[-+]?\d+)?|e[-+]?\d+)")  # 0.9741, -2.5, 9.92e-05, 1e-05: not 8
ANY_NUMBER = r"(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)"  # what it matches: 44.999989 for 45.0, or 45
# The documented runs' figures differed by up to 13% between MKL's kernel choices and thread counts (a
# non-convex fit carries a rounding difference on), and the tutorial's errors by 2e-5 below 1e-4.
RTOL, ATOL = 0.2, 1e-4
NOT_LINKED = {"lightning_logs"}  # the output the per-block directory keeps out of the repository
ROOT = Path(__file__).resolve().parent.parent  # the repository: every session runs as from its root
TIMEOUT = 600  # seconds for one command
# Set (with OMP_NUM_THREADS=1) by the top conftest.py when it chose one thread per test process; a session
# then drops both and runs with a user's default threads.
SUITE_ONE_THREAD = "TESTS_ONE_THREAD"


@dataclass
class Command:
    block: int  # the block's position in the document: the key of its state in the namespace
    index: int  # this command's position in the block
    commands: list[str]  # every command of the block, to replay the ones before this one
    expected: list[str]

    @property
    def text(self) -> str:
        return self.commands[self.index]


def split_session(lines: list[str]) -> list[tuple[int, int, str, list[str]]]:
    """(first line, line after the output, command, expected output) for each command of a block.
    Lines before the first prompt are not part of any command."""
    starts = [i for i, line in enumerate(lines) if line.startswith(PROMPT)]
    sessions = []
    for n, start in enumerate(starts):
        stop = starts[n + 1] if n + 1 < len(starts) else len(lines)
        end = start + 1
        while lines[end - 1].rstrip().endswith("\\") and end < stop:
            end += 1
        command = "\n".join([lines[start][len(PROMPT) :], *lines[start + 1 : end]])
        sessions.append((start, stop, command, lines[end:stop]))
    return sessions


class ConsoleSessionParser:
    """A Sybil parser: one Region per ``$`` command of each ```console block."""

    def __init__(self) -> None:
        # Sybil's markdown CodeBlockParser would give one example per block, and also looks into HTML
        # comments; its lexer alone gives the fenced blocks with their source.
        self.lexer = FencedCodeBlockLexer(language="console", mapping={"source": "source"})

    def __call__(self, document: Document):
        for block in self.lexer(document):
            source = block.lexemes["source"]
            lines = source.splitlines()
            # Where each line of the block starts in the document (the lexer strips a list item's or
            # quote's prefix from the source, so positions are counted in the document's text).
            line_starts = [block.start + source.offset]
            for _ in lines:
                line_starts.append(document.text.find("\n", line_starts[-1]) + 1 or len(document.text))
            sessions = split_session(lines)
            commands = [command for _, _, command, _ in sessions]
            for index, (first, stop, _, expected) in enumerate(sessions):
                yield Region(
                    line_starts[first],
                    line_starts[stop],
                    parsed=Command(block.start, index, commands, expected),
                    evaluator=evaluate,
                )


def run(command: str, cwd: Path, status: int) -> subprocess.CompletedProcess:
    # The venv's bin/ first: python, linear-pl and tensorboard are this venv's.
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.prefix) / "bin"), os.environ.get("PATH", "")])}
    # PYTHONWARNINGS, and make's: under `make test ARGS=...` a session's `make train` would otherwise be a
    # sub-make, which prints "make[1]: Entering directory ..." and inherits ARGS (the Makefile's variables).
    for name in ("PYTHONWARNINGS", "MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES", "ARGS", "TORCH", "VENV"):
        env.pop(name, None)
    if env.pop(SUITE_ONE_THREAD, None):  # the suite's one thread per test process: not a user's
        env.pop("OMP_NUM_THREADS", None)
        # A user's threads, but an idle one sleeps instead of spinning: beside the other test worker, a
        # spinning one took the core it waited for (`--preset mlp-sine`: 118 s instead of 9). The numbers
        # are the same either way; only how a thread waits differs.
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # "(exit N)" sets $? for the command, to the status the block's previous command left.
    return subprocess.run(
        ["bash", "-c", f"(exit {status})\n{command}"],
        cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip


def block_state(example: Example, command: Command) -> dict:
    """The block's directory, how many of its commands have run there, and the last exit status."""
    key = ("console block", command.block)
    if key not in example.namespace:
        workdir = example.namespace["tmp_path_factory"].mktemp("readme")
        for entry in ROOT.iterdir():
            if entry.name not in NOT_LINKED:
                (workdir / entry.name).symlink_to(entry)
        example.namespace[key] = {"dir": workdir, "done": 0, "status": 0}
    return example.namespace[key]


def expected_pattern(expected: list[str]) -> tuple[re.Pattern, list[float]]:
    """The expected text as a pattern, with a group for each measured number, and those numbers."""
    parts, measured = [], []
    for line in expected:
        if line == ELLIPSIS:
            parts.append(r"(?:[^\n]*\n)*")
            continue
        for n, text in enumerate(TIMING.split(line)):
            parts.append(ANY_TIMING if n else "")
            for m, literal in enumerate(MEASURED.split(text)):
                parts.append(ANY_NUMBER if m else "")
                parts.append(re.escape(literal))
            measured += [float(number.group()) for number in MEASURED.finditer(text)]
        parts.append(r"\n")
    return re.compile("".join(parts)), measured


def matches(expected: list[str], actual: list[str]) -> bool:
    pattern, measured = expected_pattern(expected)
    found = pattern.fullmatch("".join(line + "\n" for line in actual))
    return found is not None and all(
        math.isclose(float(got), want, rel_tol=RTOL, abs_tol=ATOL) for got, want in zip(found.groups(), measured)
    )


def normalize(lines: list[str]) -> list[str]:
    lines = [line.rstrip() for line in lines]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def evaluate(example: Example) -> str | None:
    """Sybil's evaluator: None if the output matches, else the message pytest shows."""
    command: Command = example.parsed
    state = block_state(example, command)
    for earlier in command.commands[state["done"] : command.index]:
        state["status"] = run(earlier, state["dir"], state["status"]).returncode
    proc = run(command.text, state["dir"], state["status"])
    state["status"], state["done"] = proc.returncode, command.index + 1

    expected, actual = normalize(command.expected), normalize(proc.stdout.splitlines())
    if matches(expected, actual):
        return None
    diff = difflib.unified_diff(expected, actual, "expected", "actual", lineterm="")
    stderr = proc.stderr.rstrip().splitlines()[-20:]
    return "\n".join([
        f"$ {command.text}",
        f"(ran in {state['dir']}, exit status {proc.returncode}; '...' lines and timings in the expected"
        f" output match anything, and measured numbers any within {RTOL:.0%} or {ATOL:g}, so they may show"
        " in the diff)",
        *diff,
        *(["--- stderr (last 20 lines, not compared):", *stderr] if stderr else []),
    ])  # fmt: skip
