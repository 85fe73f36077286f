"""The rules by which a console session's output matches the pasted one (tests/readme_sessions.py)."""

import pytest

from tests.readme_sessions import matches


@pytest.mark.parametrize(
    ("expected", "actual"),
    [
        # The README's last line on this machine and with MKL's AVX2 kernels on the same one.
        ("Recovered every weight to within 9.73e-05 in 8 epochs (converged).",
         "Recovered every weight to within 9.35e-05 in 8 epochs (converged)."),
        ("val_loss 4.02927e-06", "val_loss 5.35734e-06"),  # both at float32's floor: within ATOL
        ("44.999989", "45"),  # the prediction, printed as a float32 rounds on another processor
        ("best val_loss 2.536 (epoch 100), 0.032x", "best val_loss 2.323 (epoch 100), 0.029x"),
        ("Initial weights: [0.0976, -0.0311]", "Initial weights: [0.0976, -0.0311]"),
        ("6 passed in 1.76s", "6 passed in 3.3s"),  # a timing
    ],
)  # fmt: skip
def test_measured_numbers_match_within_the_tolerance(expected, actual):
    assert matches([expected], [actual])


@pytest.mark.parametrize(
    ("expected", "actual"),
    [
        ("val_acc 0.9704", "val_acc 0.7000"),  # a measured number beyond RTOL
        ("w1   3.0001", "w1   -3.0001"),  # the sign is part of the number
        ("Recovered in 8 epochs", "Recovered in 9 epochs"),  # integers are literal: an epoch, a count
        ("Best config (trial 2)", "Best config (trial 3)"),
        ("8", "8.0"),  # a class is not a measured number
        ("val_loss 0.0929", "val_loss 0.0929 (diverged)"),  # the rest of the line is literal
    ],
)  # fmt: skip
def test_anything_else_must_match_as_written(expected, actual):
    assert not matches([expected], [actual])


def test_an_ellipsis_line_still_stands_for_any_lines():
    expected = ["Epoch [10/100]  train_loss 33.0559", "...", "After 100 epochs: best 2.536"]
    actual = ["Epoch [10/100]  train_loss 33.0560", "Epoch [20/100]  train_loss 15.2", "After 100 epochs: best 2.41"]
    assert matches(expected, actual)
    assert not matches(expected, actual[:2])
