"""The example's own checks: its bad input, and its divergence against the stable limit (what survives on any
model -- resume, unusable checkpoints, kills, the runner's bad input -- is in tests/runner/test_reliability.py)."""

import pytest
import torch


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--lr", "0"], "--lr 0.0: must be a finite number > 0"),
        (["--lr=-1e-3"], "--lr -0.001: must be a finite number > 0"),
        (["--batch_size", "0"], "--batch_size 0: must be an integer >= 1"),
        (["--num_samples", "0"], "--num_samples 0: must be an integer >= 1"),
        (["--num_samples", "3"], "fewer samples than the 7 weights: the weights would not be identifiable"),
        (["--true_weights", "[]"], "--true_weights []: must be a non-empty list of numbers"),
        (["--true_weights", "[a, b]"], 'Parser key "data.true_weights"'),
        (["--low", "5", "--high", "2"], "--low 5: must be <= high (2)"),
        (["--noise_std", "-1"], "--noise_std -1.0: must be >= 0"),
        (["--preset", "nope"], "--preset 'nope': unknown preset"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(train, flags, message):
    run = train(*flags)
    assert run.status == 2
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("error: "), run.stderr
    assert message in run.stderr
    assert run.stdout == ""
    assert not (run.root / "lightning_logs").exists()


def test_divergence_stops_with_a_clear_line_exit_1_and_results_say_so(train):
    # Tutorial 2's lr with a correct single-output model: above the stable limit (~1.66e-4).
    run = train("--preset", "lntx", "--lr", "5e-4", "--max_epochs", "50")
    assert run.status == 1
    warning, error = [line for line in run.stderr.splitlines() if line.startswith(("warning:", "error:"))]
    assert warning.startswith("warning: --lr 0.0005 is above the stable limit 0.000166")
    assert error.startswith("error: training diverged at epoch ")
    assert "stable limit for this data is 0.000166, try --lr 8.28e-05" in error
    results = run.results
    assert results["diverged"] is True and results["converged"] is False
    assert "Recovered" not in run.stdout and "Not recovered" not in run.stdout  # no table for a NaN run


def test_divergence_keeps_the_best_checkpoint_saved_before_it(train):
    # Validated after epoch 1, diverged in epoch 2: best.ckpt was held in memory (validations came
    # faster than --checkpoint_every_seconds) and is written when training fails.
    run = train("--preset", "lntx", "--lr", "5e-4", "--max_epochs", "50", "--log_every_n_epochs", "1")
    assert run.status == 1 and run.results["best_epoch"] == 1
    best = run.run_dir / "checkpoints" / "best.ckpt"
    assert run.stderr.splitlines()[-1].endswith(f"; best checkpoint kept: {best}")
    assert torch.load(best, weights_only=True)["epoch"] == 0  # saved during epoch 1 (0-based 0)


def test_a_stable_lr_gives_no_warning(train):
    run = train("--max_epochs", "2")
    assert "warning:" not in run.stderr and run.results["diverged"] is False
