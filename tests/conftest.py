"""The example's tests: the runner's fixtures serve them too (tests/runner/conftest.py: each test in a directory
of its own, ``train`` and ``sweep`` in this process, ``script`` as a process, a TensorBoard server)."""

from runner.conftest import in_tmp_path, script, sweep, tensorboard, train  # noqa: F401
