"""Training recovers the true weights: the default run over ten data seeds, and each preset."""

import pytest

from linear_pl.regression import SyntheticDataModule
from linear_pl.regression.closed_form import SAFETY_FACTOR, stable_lr


def test_default_run_recovers_every_weight_of_all_ten_seeds_in_at_most_50_epochs(train):
    # Preconditioned (whitened) inputs: 7-9 epochs each here; the raw problem took 144-2405.
    for seed in range(10):
        results = train("--seed", str(seed)).results
        assert results["max_abs_error"] <= 0.01 and results["converged"], (seed, results["max_abs_error"])
        assert results["epochs"] <= 50, (seed, results["epochs"])


def test_seed_presets_run_the_tutorial_literally(train):
    # Tutorial 1's lr 1e-5 recovers the weights only on lucky draws (0.01 to 0.95 over 6 seeds,
    # measured): the preset must still run exactly its epochs at its lr and move towards the truth.
    for preset, epochs, d in [("seed-4w", 100, 4), ("seed-7w", 200, 7)]:
        results = train("--preset", preset, "--seed", "2").results
        assert (results["epochs"], results["global_step"], results["lr"]) == (epochs, epochs * 10, 1e-5)
        initial_error = max(abs(a - b) for a, b in zip(results["initial_weights"], results["true_weights"]))
        assert len(results["learned_weights"]) == d
        assert results["max_abs_error"] < min(1.0, initial_error / 5)


@pytest.mark.parametrize("preset", ["lntx", "lntx-1w"])
def test_lntx_presets_learn_weights_and_bias(train, preset):
    # The full presets run 1000 epochs of 100 samples (~2 minutes here); 100 epochs already put the
    # weights within 0.02, while the bias -- the slow direction for all-positive inputs -- lags.
    results = train("--preset", preset, "--max_epochs", "100", "--seed", "1").results
    data = SyntheticDataModule(results["true_weights"], 0.0, num_samples=100, high=50, seed=1)
    data.setup()
    # Half the stable limit (~1.5e-4 for lntx), not the tutorial's 5e-4 that diverges.
    assert results["lr"] == pytest.approx(SAFETY_FACTOR * stable_lr(data.train_x, bias=True))
    weight_errors = [abs(a - b) for a, b in zip(results["learned_weights"], results["true_weights"])]
    assert max(weight_errors) < 0.02
    assert abs(results["learned_bias"]) < abs(results["initial_bias"])
    assert results["true_bias"] == 0.0
