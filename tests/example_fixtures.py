"""The example's shared fixtures (registered by the root conftest.py): one run whose TensorBoard files
several tests read back (test_cli, test_tensorboard)."""

import io
from contextlib import redirect_stderr, redirect_stdout

import pytest

from linear_pl.runner.cli import cli_main

# Twenty raw epochs (no preconditioning: it would converge, and stop, in fewer), with a bias.
TENSORBOARD_RUN = ["--max_epochs", "20", "--true_weights", "[2, 3]", "--true_bias", "1", "--bias", "--seed", "2",
                   "--precondition", "none"]  # fmt: skip


@pytest.fixture(scope="session")
def tensorboard_run(tmp_path_factory):
    """One run shared by the tests that read its TensorBoard files back (test_cli, test_tensorboard)."""
    root = tmp_path_factory.mktemp("tensorboard_run")
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = cli_main([*TENSORBOARD_RUN, "--default_root_dir", str(root)])
    assert status == 0, err.getvalue()
    from conftest import Run  # noqa: PLC0415 -- tests/conftest.py, loaded by the time a test asks for this

    return Run(status, out.getvalue(), err.getvalue(), root)
