"""A regressor written from scratch in Lightning: a small MLP with MSE and Adam, for examples/diabetes_data.py's
DiabetesData (raw-scale targets, 25..346). Nothing here knows linear_pl.
"""

import lightning as L
import torch
from torch import nn
from torch.nn import functional as F


class MyRegressor(L.LightningModule):
    # lr=0.1 because the targets stay in their own units (mean 152, std 77): Adam moves each weight by about lr
    # a step, so at 1e-2 the network takes some 150 epochs to reach that scale, at 0.1 about 20. It does not
    # then overfit the 342 training rows (measured to 200 epochs), unlike the same network at 1e-2 on
    # standardized x and y, which beat least squares only until epoch ~10.
    def __init__(self, num_features: int = 10, hidden: int = 32, lr: float = 1e-1) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(num_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # One target per row: [N, 1] -> [N], the shape of y.
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train/loss", loss, on_epoch=True, on_step=False, sync_dist=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", F.mse_loss(self(x), y), sync_dist=True)

    def predict_step(self, batch, batch_idx):
        # batch[0]: the features whether the loader yields (x,) or (x, y).
        return self(batch[0])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
