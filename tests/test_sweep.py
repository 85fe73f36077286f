"""Sweeps of the example: the sweep command's own names, and the helpers (its MLP-on-sine trials) that
test_sweep_resume and test_sweep_postgres use. What a sweep gives any model -- the space checked first, every
trial a run, pruning, failures, continuing, --n_jobs, signals -- is tested in tests/runner/test_sweep.py."""

import re

import pytest

from linear_pl.__main__ import main as linear_pl_main

# The MLP on the sine target, small: a trial takes well under a second.
FAST = ["--preset", "mlp-sine", "--max_epochs", "6", "--num_samples", "200", "--num_val_samples", "50",
        "--log_every_n_epochs", "2"]  # fmt: skip
SPACE = """\
model.lr: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}
model.hidden_sizes: {type: categorical, choices: [[16], [32, 32]]}
"""
TRIAL_LINE = re.compile(r"^Trial +(\d+)  model\.lr=\S+  model\.hidden_sizes=\[[\d, ]+\]  (.*)  \d+\.\d s$")


def trial_numbers(stdout: str) -> list[int]:
    return [int(m[1]) for line in stdout.splitlines() if (m := TRIAL_LINE.match(line))]


def test_the_sweep_command_is_also_linear_pl_sweep(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # argparse's --help fits the terminal
    with pytest.raises(SystemExit) as done:  # argparse's --help exits, in-process as in the command
        linear_pl_main(["sweep", "--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and "--space SPACE" in out and "--n_jobs N_JOBS" in out
