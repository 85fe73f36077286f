"""A regressor written from scratch in Lightning: a small MLP with MSE and Adam, on scikit-learn's diabetes set
(442 patients, 10 features) standardized with training-set statistics. Nothing here knows linear_pl.
"""

import lightning as L
import torch
from sklearn.datasets import load_diabetes
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset


class MyRegressor(L.LightningModule):
    def __init__(self, num_features: int = 10, hidden: int = 32, lr: float = 1e-2) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(num_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # One target per row: [N, 1] -> [N], the shape of y.
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train/loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", F.mse_loss(self(x), y))

    def predict_step(self, batch, batch_idx):
        # batch[0]: the features whether the loader yields (x,) or (x, y).
        return self(batch[0])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class DiabetesStandardized(L.LightningDataModule):
    """The split of examples/diabetes_data.py (same seed, same rows), with x and y standardized.

    The raw target (25..346) would make a network spend its first hundreds of steps just learning the mean;
    y_mean and y_std are kept so that predictions and losses convert back: y = y_std * pred + y_mean.
    """

    def __init__(self, batch_size: int = 32, val_size: int = 100, seed: int = 0) -> None:
        super().__init__()
        self.batch_size, self.val_size, self.seed = batch_size, val_size, seed

    def setup(self, stage: str | None = None) -> None:
        x, y = (torch.tensor(a, dtype=torch.float32) for a in load_diabetes(return_X_y=True, scaled=False))
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.seed))
        train, val = order[: -self.val_size], order[-self.val_size :]
        # Training rows only: the validation rows must not leak into the scaling.
        x_mean, x_std = x[train].mean(0), x[train].std(0)
        self.y_mean, self.y_std = y[train].mean(), y[train].std()
        x, y = (x - x_mean) / x_std, (y - self.y_mean) / self.y_std
        self.train_set, self.val_set = TensorDataset(x[train], y[train]), TensorDataset(x[val], y[val])

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.val_size)
