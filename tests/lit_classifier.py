"""The runner tests' model: a small classifier and its data, in plain Lightning, as a user writes them.

Nothing here knows the run machinery. The runner's tests train it through the command line (``CLASSIFIER`` in
conftest.py), so they test the runner on a model that is not the example, and travel with a copy of it."""

import lightning as L
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import MulticlassAccuracy


class Classifier(L.LightningModule):
    def __init__(
        self, num_features: int = 2, num_classes: int = 3, hidden_size: int = 32, dropout: float = 0.1, lr: float = 1e-2
    ) -> None:
        super().__init__()
        # num_features: the run links it to the data's (Blobs.num_features), so it is never given twice.
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(num_features, hidden_size), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden_size, num_classes)
        )  # fmt: skip
        # One metric per stage: each accumulates over its own epoch. "micro": the fraction classified right.
        self.val_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train/loss", loss, on_epoch=True, on_step=False, sync_dist=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.val_acc(logits, y)
        self.log("val/loss", F.cross_entropy(logits, y), sync_dist=True)  # what best.ckpt and early stopping follow
        self.log("val/acc", self.val_acc, prog_bar=True)

    def test_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.test_acc(logits, y)
        self.log("test/loss", F.cross_entropy(logits, y), sync_dist=True)
        self.log("test/acc", self.test_acc)

    def predict_step(self, batch, batch_idx):
        # batch[0]: the inputs, whether the loader yields (x,) (predict.py --x, --input) or (x, y).
        return self(batch[0]).argmax(dim=1)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


class Blobs(L.LightningDataModule):
    num_features = 2  # the model's num_features is linked to this
    num_classes = 3

    def __init__(
        self,
        num_samples: int = 4000,
        spread: float = 1.5,
        batch_size: int = 32,
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.num_samples, self.spread, self.batch_size, self.seed = num_samples, spread, batch_size, seed
        self.val_fraction, self.test_fraction = val_fraction, test_fraction

    def setup(self, stage: str | None = None) -> None:
        # Its own generator: the same data for a seed, whatever else drew from the global one.
        generator = torch.Generator().manual_seed(self.seed)
        centres = 2.0 * torch.randn(self.num_classes, self.num_features, generator=generator)
        y = torch.randint(self.num_classes, (self.num_samples,), generator=generator)
        x = centres[y] + self.spread * torch.randn(self.num_samples, self.num_features, generator=generator)
        n_val, n_test = round(self.num_samples * self.val_fraction), round(self.num_samples * self.test_fraction)
        sizes = [n_val, n_test, self.num_samples - n_val - n_test]  # the samples are independent: split in order
        (x_val, x_test, x_train), (y_val, y_test, y_train) = x.split(sizes), y.split(sizes)
        self.train_set = TensorDataset(x_train, y_train)
        self.val_set = TensorDataset(x_val, y_val)
        self.test_set = TensorDataset(x_test, y_test)
        self.predict_set = TensorDataset(x_test)  # inputs only, as a user's unlabelled rows would come

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_set, batch_size=self.batch_size)

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(self.predict_set, batch_size=self.batch_size)
