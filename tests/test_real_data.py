"""Data the template has never seen: a user's own LightningDataModule and real data, against scikit-learn."""

import lightning as L
import pytest
import torch
import yaml
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression
from torch.utils.data import DataLoader, TensorDataset


class DiabetesData(L.LightningDataModule):
    """scikit-learn's diabetes set (442 x 10) as a Lightning user writes a data module: no linear_pl in sight."""

    def __init__(self, batch_size: int = 32, shuffle: bool = True, val_size: int = 100, split_seed: int = 0) -> None:
        super().__init__()
        self.batch_size, self.shuffle, self.val_size, self.split_seed = batch_size, shuffle, val_size, split_seed

    def setup(self, stage: str | None = None) -> None:
        x, y = (torch.tensor(a, dtype=torch.float32) for a in load_diabetes(return_X_y=True))
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.split_seed))
        train, val = order[: -self.val_size], order[-self.val_size :]
        self.train_set, self.val_set = TensorDataset(x[train], y[train]), TensorDataset(x[val], y[val])

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=self.shuffle)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.val_size)


DIABETES = f"{__name__}.DiabetesData"


def least_squares_val_mse() -> float:
    """scikit-learn's closed-form answer on the same split: the peer to compare with."""
    data = DiabetesData()
    data.setup()
    (x, y), (xv, yv) = data.train_set.tensors, data.val_set.tensors
    fit = LinearRegression().fit(x.numpy(), y.numpy())
    return float(((fit.predict(xv.numpy()) - yv.numpy()) ** 2).mean())


def test_a_users_data_module_keeps_its_defaults_and_sizes_the_model(train):
    run = train("--data", DIABETES, "--bias", "--max_epochs", "20")
    assert run.status == 0, run.stderr
    data = yaml.safe_load((run.run_dir / "config.yaml").read_text())["data"]
    # Its own batch_size 32 and shuffle True: not SyntheticDataModule's 1 and False.
    assert data["init_args"] == {"batch_size": 32, "shuffle": True, "val_size": 100, "split_seed": 0}
    results = run.results
    assert len(results["learned_weights"]) == 10  # from the first batch's x: no num_features given
    # The data knows no true weights: no truth, no errors against it, the least-squares fit instead.
    assert results["true_weights"] is None and results["max_abs_error"] is None
    assert "true" not in run.stdout.split("least sq.")[0].splitlines()[-1]
    assert results["global_step"] == 20 * 11  # 342 samples at its batch 32


def test_the_linear_model_with_default_flags_is_within_2_percent_of_linear_regression(train):
    run = train("--data", DIABETES, "--bias")
    assert run.status == 0, run.stderr
    results, peer = run.results, least_squares_val_mse()
    assert results["least_squares_val_loss"] == pytest.approx(peer, rel=1e-4)  # our closed form agrees
    assert results["best_val_loss"] <= 1.02 * peer, (results["best_val_loss"], peer)
    assert results["stopped_because"] == "val_plateau"
    best = torch.load(results["best_checkpoint"], weights_only=True)
    assert best["epoch"] + 1 == results["best_epoch"]
    assert f"the least-squares fit's {peer:.4g}" in run.stdout


def test_the_mlp_with_early_stopping_is_within_15_percent_of_linear_regression(train):
    run = train("--data", DIABETES, "--model", "mlp")
    assert run.status == 0, run.stderr
    results, peer = run.results, least_squares_val_mse()
    assert results["learned_weights"] is None
    assert results["best_val_loss"] <= 1.15 * peer, (results["best_val_loss"], peer)
    assert results["stopped_because"] == "val_plateau" and results["best_epoch"] < results["epochs"]


@pytest.mark.parametrize("flag", [["--low", "5"], ["--true_weights", "[1, 2]"], ["--target", "sine"]])
def test_a_flag_of_another_data_class_is_one_line_and_exit_2(train, flag):
    run = train("--data", DIABETES, *flag)
    assert run.status == 2 and run.stderr.count("\n") == 1, run.stderr
    name = flag[0].removeprefix("--")
    assert f"error: {flag[0]}: {DIABETES} takes no {name}; the flag applies to --data synthetic only" in run.stderr
    assert not (run.root / "lightning_logs").exists()


def test_a_model_flag_of_another_model_is_one_line_and_exit_2(train):
    run = train("--model", "mlp", "--bias")
    assert run.status == 2 and "--bias: linear_pl.regression.model.MLPModel takes no bias" in run.stderr


def test_a_data_class_that_is_not_a_data_module_is_refused(train):
    run = train("--data", "torch.nn.Linear")
    assert (run.status, run.stderr) == (2, "error: --data torch.nn.Linear: not a LightningDataModule\n")
