"""Sweeps of the example: the sweep command's own names, and the helpers (its MLP-on-sine trials) that
test_sweep_resume and test_sweep_postgres use. What a sweep gives any model -- the space checked first, every
trial a run, pruning, failures, continuing, --n_jobs, signals -- is tested in tests/test_run_sweep.py."""

import os
import re
import subprocess
import sys

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


def test_without_the_sweep_extra_the_command_says_so_in_one_line():
    hidden = "import sys; sys.modules['optuna'] = None; from linear_pl.sweep import main; sys.exit(main(['--space=s']))"
    run = subprocess.run([sys.executable, "-c", hidden], capture_output=True, text=True)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr == 'error: sweeps need the sweep extra (optuna is missing): pip install -e ".[sweep]"\n'


def test_the_sweep_command_is_also_linear_pl_sweep():
    out = subprocess.run([sys.executable, "-m", "linear_pl", "sweep", "--help"], capture_output=True, text=True,
                         env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    assert out.returncode == 0 and "--space SPACE" in out.stdout and "--n_jobs N_JOBS" in out.stdout
