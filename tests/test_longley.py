"""NIST's Longley table (16 rows, condition number 5e9) without validation data: the example stops by
itself, within 1% of the certified coefficients (issue 25, point 9)."""

import numpy as np
import pytest
from runner.commands import ROOT
from sklearn.linear_model import LinearRegression
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from linear_pl.regression.callbacks import LowerRateOnPlateau
from linear_pl.regression.csv_data import CSVDataModule

LONGLEY = str(ROOT / "examples" / "longley.csv")
# NIST StRD, Longley: certified values of x1..x6 (GNPDEFL, GNP, UNEMP, ARMED, POP, YEAR), then the intercept.
CERTIFIED = [15.0618722713733, -0.358191792925910e-01, -2.02022980381683, -1.03322686717359,
             -0.511041056535807e-01, 1829.15146461355, -3482258.63459582]  # fmt: skip
RUN = ["--data", "csv", "--data.path", LONGLEY, "--data.target_column", "TOTEMP", "--data.val_fraction", "0", "--bias"]


def logged_lrs(run_dir) -> list[float]:
    events = EventAccumulator(str(run_dir))
    events.Reload()
    return [event.value for event in events.Scalars("train/lr")]


def relative_errors(results: dict) -> np.ndarray:
    learned = np.array([*results["learned_weights"], results["learned_bias"]])
    return np.abs(learned / np.array(CERTIFIED) - 1)


def test_the_shipped_table_is_nists_longley():
    data = CSVDataModule(LONGLEY, "TOTEMP", val_fraction=0)
    data.setup()
    assert data.feature_names == ["GNPDEFL", "GNP", "UNEMP", "ARMED", "POP", "YEAR"] and len(data.train_x) == 16
    table = np.loadtxt(LONGLEY, delimiter=",", skiprows=1)  # float64: the float32 tensors would cost digits
    fit = LinearRegression().fit(table[:, 1:], table[:, 0])
    assert [*fit.coef_, fit.intercept_] == pytest.approx(CERTIFIED, rel=1e-9)


@pytest.mark.parametrize("batch_size", ["32", "4"])  # the whole table in one step; four rows a step (SGD)
def test_without_validation_data_it_stops_by_itself_within_1_percent_of_the_certified_values(train, batch_size):
    run = train(*RUN, "--data.batch_size", batch_size)
    assert run.status == 0, run.stderr
    results = run.results
    assert results["stopped_because"] == "train_plateau" and results["epochs"] < 3000
    errors = relative_errors(results)
    assert errors.max() < 0.01, errors.round(4).tolist()
    # Before it stopped, the first plateaus lowered the rate, each time by the same factor.
    lrs = logged_lrs(run.run_dir)
    drops = LowerRateOnPlateau()
    assert lrs[-1] == pytest.approx(lrs[0] * drops.factor**drops.drops, rel=1e-5)
    assert len(set(lrs)) == drops.drops + 1


def test_the_plateau_schedule_watches_the_training_loss_without_validation_data(train):
    run = train(*RUN, "--lr_scheduler", "plateau", "--max_epochs", "150")
    assert run.status == 0, run.stderr  # before: one line asking for a val/loss never logged
    first_lr = logged_lrs(run.run_dir)[0]
    assert run.results["lr"] < first_lr  # lowered on the training loss's plateau (results.json: the last lr)
