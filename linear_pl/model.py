"""The tutorials' model, and the LightningModule that trains it with MSE and SGD."""

import math
from typing import Literal

import lightning as L
import torch
from torch import nn
from torch.nn import functional as F

from linear_pl.closed_form import SAFETY_FACTOR, stable_lr


class DotProduct(nn.Module):
    """Tutorial 1's ``MyLinear``: y = x @ weight, plus a bias if asked for (tutorial 2's nn.Linear)."""

    def __init__(self, num_features: int, bias: bool = False) -> None:
        super().__init__()
        # randn, as both tutorials start: the first thing a learner watches is these numbers moving.
        self.weight = nn.Parameter(torch.randn(num_features))
        self.bias = nn.Parameter(torch.randn(())) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` is one sample ``[d]`` or a batch ``[B, d]``; returns ``[]`` or ``[B]``."""
        y = x @ self.weight
        return y if self.bias is None else y + self.bias


class LinearModel(L.LightningModule):
    """Trains :class:`DotProduct` with mean squared error and plain SGD.

    ``lr="auto"`` takes the learning rate from the training data at ``setup``: SAFETY_FACTOR times
    the largest rate at which SGD is stable for that data and batch size (see ``stable_lr``).
    """

    def __init__(
        self,
        num_features: int = 7,
        bias: bool = False,
        lr: float | Literal["auto"] = "auto",
        momentum: float = 0.0,
        lr_scheduler: Literal["none", "step", "exponential"] = "none",
        step_size: int = 100,
        gamma: float = 0.5,
    ) -> None:
        super().__init__()
        if lr != "auto" and not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"--lr {lr}: must be a finite number > 0, or auto")
        if not (math.isfinite(momentum) and 0 <= momentum < 1):
            raise ValueError(f"--momentum {momentum}: must be in [0, 1)")
        self.save_hyperparameters()
        self.net = DotProduct(num_features, bias)
        self.lr = lr  # a float once setup() has resolved "auto"
        self.stable_lr = math.inf  # known once setup() has seen the data
        self._epoch_loss_sum: torch.Tensor | None = None  # see training_step
        self._epoch_samples = 0

    @property
    def weight(self) -> nn.Parameter:
        return self.net.weight

    @property
    def bias(self) -> nn.Parameter | None:
        return self.net.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Inference: ``model(x)`` for ``x`` of shape ``[d]`` or ``[B, d]``."""
        return self.net(x)

    def setup(self, stage: str) -> None:
        if stage != "fit":
            return  # validate/predict need no learning rate
        datamodule = self.trainer.datamodule
        if hasattr(datamodule, "train_x"):
            # The largest lr at which SGD is stable on this data and batch size. Under DDP one step
            # averages the gradients of world_size consecutive batches: one batch of that many times.
            batch_size = datamodule.batch_size * self.trainer.world_size
            self.stable_lr = stable_lr(datamodule.train_x, self.bias is not None, batch_size)
        elif self.lr == "auto":
            raise ValueError('lr="auto" needs a datamodule that exposes train_x after setup')
        if self.lr == "auto":
            self.lr = SAFETY_FACTOR * self.stable_lr

    def on_train_epoch_start(self) -> None:
        self._epoch_loss_sum = torch.zeros((), device=self.device)
        self._epoch_samples = 0

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.mse_loss(self(x), y)
        # The epoch's loss is summed on the device and logged once: reading it back to the host
        # every step would stall the device, and self.log every step costs ~0.2 ms.
        self._epoch_loss_sum.add_(loss.detach(), alpha=len(y))
        self._epoch_samples += len(y)
        if batch_idx + 1 == self.trainer.num_training_batches:
            # Logged at the epoch's last step, not in on_train_epoch_end: callbacks run their
            # on_train_epoch_end before the module's, and the progress report needs this value.
            # logger=False: a TensorBoard write every epoch would cost more than a tiny epoch's
            # training; ProgressReport writes it every --log_every_n_epochs, beside the weights.
            epoch_loss = self._epoch_loss_sum / self._epoch_samples
            self.log("train/loss", epoch_loss, on_step=False, on_epoch=True, sync_dist=True, logger=False)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        # batch_size weights the epoch mean correctly when the last batch is shorter.
        self.log("val/loss", F.mse_loss(self(x), y), batch_size=len(y), sync_dist=True)

    def predict_step(self, batch: torch.Tensor | tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x)

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=self.hparams.momentum)
        if self.hparams.lr_scheduler == "step":
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, self.hparams.step_size, self.hparams.gamma)
        elif self.hparams.lr_scheduler == "exponential":
            scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, self.hparams.gamma)
        else:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}
