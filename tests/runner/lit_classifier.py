"""The runner tests' model: a small classifier and its data, in plain Lightning, as a user writes them.

Nothing here knows the run machinery. The runner's tests train it through the command line (``CLASSIFIER``), so
they test the runner on a model that is not the example, and travel with a copy of it."""

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import MulticlassAccuracy

# The flags that train this classifier on its data.
CLASSIFIER = ["--model", "runner.lit_classifier.Classifier", "--data", "runner.lit_classifier.Blobs"]


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


class DenseNet(nn.Module):
    """A network given to the model whole, as lightning-hydra-template's SimpleDenseNet is."""

    def __init__(self, num_features: int = 2, hidden_size: int = 16, num_classes: int = 3) -> None:
        """
        Args:
            num_features: inputs per sample.
            hidden_size: width of the hidden layer.
            num_classes: outputs per sample.
        """
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(num_features, hidden_size), nn.ReLU(), nn.Linear(hidden_size, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class InjectedClassifier(L.LightningModule):
    """lightning-hydra-template's shape: the network, the optimizer and the scheduler are arguments; it logs
    ``train/loss`` and ``val/loss`` and schedules on ``val/loss``."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerCallable = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = None,
        compile: bool = False,
    ) -> None:
        """
        Args:
            net: the network, given whole.
            optimizer: makes the optimizer from the parameters.
            scheduler: makes the learning-rate schedule from the optimizer.
            compile: whether to compile the network (unused here: the run's --compile does it).
        """
        super().__init__()
        self.save_hyperparameters(logger=False, ignore=["net"])
        self.net = net
        # The callables themselves: under LightningCLI self.hparams holds their config, not them.
        self.optimizer, self.scheduler = optimizer, scheduler

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train/loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", F.cross_entropy(self(x), y))

    def configure_optimizers(self):
        optimizer = self.optimizer(self.parameters())
        if self.scheduler is None:
            return optimizer
        scheduler = self.scheduler(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val/loss"}}


class TwoPlayers(L.LightningModule):
    """Lightning's GAN example's shape: manual optimization, two optimizers, ``g_loss`` and ``d_loss``
    logged from the training step, and no ``validation_step`` (its data may still serve validation)."""

    def __init__(self, num_features: int = 2, num_classes: int = 3, lr: float = 1e-2) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = nn.Linear(num_features, num_classes)
        self.discriminator = nn.Linear(num_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.generator(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        g_opt, d_opt = self.optimizers()
        for name, net, optimizer in (("g_loss", self.generator, g_opt), ("d_loss", self.discriminator, d_opt)):
            loss = F.cross_entropy(net(x), y)
            optimizer.zero_grad()
            self.manual_backward(loss)
            optimizer.step()
            self.log(name, loss, prog_bar=True)

    def configure_optimizers(self):
        lr = self.hparams.lr
        return torch.optim.SGD(self.generator.parameters(), lr=lr), torch.optim.SGD(
            self.discriminator.parameters(), lr=lr
        )


class LogsTrainLoss(Classifier):
    """Lightning's examples' spelling: ``train_loss``, logged every step, and returned."""

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss
