"""The example's diagnostics pay for themselves: one pass for the moments, a sample for a warning,
and the least-squares baseline skipped where it would cost more than a tenth of the run."""

import torch

import linear_pl.regression.closed_form
from linear_pl.regression import SyntheticDataModule
from linear_pl.regression.data_protocol import training_sample

WIDE = ["--true_weights", "[" + ", ".join(["1"] * 64) + "]", "--num_samples", "2000", "--batch_size", "100",
        "--max_epochs", "5", "--lr", "1e-7"]  # fmt: skip  # 64 features, 5 epochs: the baseline costs ~22%


def test_the_baseline_is_skipped_in_one_line_where_it_would_cost_more_than_a_tenth(train):
    run = train(*WIDE)
    assert run.status == 0, run.stderr
    assert "note: the least-squares baseline would cost about 22% of this run" in run.stderr
    results = run.results
    assert results["least_squares_weights"] is None and results["least_squares_val_loss"] is None
    table = run.stdout.splitlines()
    assert table[-2].split()[3] == "-"  # the least-squares column is empty
    forced = train(*WIDE, "--baseline", "on")
    assert "note: the least-squares" not in forced.stderr and len(forced.results["least_squares_weights"]) == 64
    off = train("--max_epochs", "3", "--baseline", "off")
    assert "note" not in off.stderr and off.results["least_squares_weights"] is None


def test_the_moments_come_from_one_pass_over_the_training_data(train, monkeypatch):
    passes = []
    moments_of = linear_pl.regression.closed_form.Moments.of.__func__

    def counted(cls, batches, full=True):
        passes.append(full)
        return moments_of(cls, batches, full)

    monkeypatch.setattr(linear_pl.regression.closed_form.Moments, "of", classmethod(counted))
    # Standardizing needs the diagonal moments, the baseline the full ones: one full pass serves both.
    run = train("--precondition", "standardize", "--max_epochs", "3", "--baseline", "on")
    assert run.status == 0, run.stderr
    assert passes == [True] and run.results["least_squares_weights"] is not None


def test_a_sample_for_the_warning_is_a_seeded_choice_of_rows_that_leaves_the_random_state():
    data = SyntheticDataModule(num_samples=1000)
    data.setup()
    state = torch.get_rng_state()
    (first,), (again,) = ([x for x, _ in training_sample(data, rows=50)] for _ in range(2))
    assert torch.equal(torch.get_rng_state(), state)
    assert first.shape == (50, 7) and torch.equal(first, again)
    rows = {tuple(r) for r in data.train_x.tolist()}
    assert all(tuple(r) in rows for r in first.tolist())
    assert not torch.equal(first, data.train_x[:50])  # not merely the first rows


def test_the_lr_warning_still_comes_from_the_sample(train):
    run = train("--preset", "lntx", "--lr", "5e-4", "--max_epochs", "3")
    assert "warning: --lr 0.0005 is above the stable limit 0.000166" in run.stderr
