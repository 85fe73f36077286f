"""The LightningModules that train the networks of ``networks.py`` with MSE and SGD.

``LinearModel`` trains tutorial 1's ``DotProduct``; ``MLPModel`` trains ``MLP``. Their common recipe,
``RegressionModel``, brings the regression extras (the weights table, the least-squares baseline,
the convergence stop, the learning-rate guard) as callbacks of its own.
"""

import math
import sys
from typing import Any, Literal

import lightning as L
import torch
from torch import nn
from torch.nn import functional as F

from linear_pl.regression.callbacks import ConvergenceStop, LowerRateOnPlateau
from linear_pl.regression.closed_form import SAFETY_FACTOR, baseline_cost_fraction, stable_lr_of
from linear_pl.regression.conditioning import Precondition, Preconditioner, resolve
from linear_pl.regression.data_protocol import batch_size_of, moments_of, training_batches, training_sample
from linear_pl.regression.networks import MLP, DotProduct
from linear_pl.regression.report import WeightsReport
from linear_pl.runner.monitor import TRAIN_LOSS, has_validation_data

# --baseline auto computes the least-squares baseline when it costs at most this fraction of the run.
BASELINE_MAX_COST = 0.1


class RegressionModel(L.LightningModule):
    """Trains a network ``self.net`` (set by the subclass) with mean squared error and SGD.

    Everything a run needs besides the network lives here: the epoch loss, validation, prediction,
    the optimizer and learning-rate schedules. At ``fit`` the model reads what it needs from the
    training data (:meth:`fit_to_data`), and ``lr="auto"`` is resolved by :meth:`auto_lr`.
    """

    net: nn.Module

    def __init__(
        self,
        lr: float | Literal["auto"] = "auto",
        momentum: float = 0.0,
        lr_scheduler: Literal["none", "step", "exponential", "cosine", "plateau"] = "none",
        step_size: int = 100,
        gamma: float = 0.5,
        baseline: Literal["auto", "on", "off"] = "auto",
    ) -> None:
        """``baseline``: compute the least-squares fit the report compares with (``on``), not
        (``off``), or only where it costs at most BASELINE_MAX_COST of the run (``auto``)."""
        super().__init__()
        if lr != "auto" and not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr {lr}: must be a finite number > 0, or auto")
        if not (math.isfinite(momentum) and 0 <= momentum < 1):
            raise ValueError(f"momentum {momentum}: must be in [0, 1)")
        self.lr = lr  # a float once setup() has resolved "auto"
        self.momentum, self.lr_scheduler, self.step_size, self.gamma = momentum, lr_scheduler, step_size, gamma
        self.baseline = baseline
        self.computes_baseline = baseline != "off"  # decided for the run's size at fit (see setup)
        self.stable_lr = math.inf  # the largest stable lr, where the model knows it (see LinearModel)

    # What a model without weights (the MLP) reports in their place.
    weight: torch.Tensor | None = None
    bias: torch.Tensor | None = None

    def fit_to_data(self, datamodule: L.LightningDataModule) -> None:
        """Take from the training data whatever the model needs before its first step (nothing here)."""

    def auto_lr(self, datamodule: L.LightningDataModule) -> float:
        """The learning rate ``lr="auto"`` stands for, given the training data."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Inference: ``model(x)`` for ``x`` of shape ``[d]`` or ``[B, d]``."""
        return self.net(x)

    def configure_callbacks(self) -> list[L.Callback]:
        """The regression extras, Lightning's way for a model to bring callbacks: made once, and
        attached once (a validate after fit asks again; the same ones are attached already)."""
        if not hasattr(self, "_extras"):
            self._extras = [WeightsReport(), ConvergenceStop(), LowerRateOnPlateau()]
        attached = any(c in self.trainer.callbacks for c in self._extras)
        return [] if attached else self._extras

    def setup(self, stage: str) -> None:
        if stage != "fit":
            return
        datamodule = self.trainer.datamodule
        self.computes_baseline = self._decide_baseline()
        if datamodule is not None:
            if self.computes_baseline:  # one pass gives the baseline's d x d moments and conditioning's
                moments_of(datamodule, full=True)
            # A resumed run computes the same values, then loads the checkpoint's over them.
            self.fit_to_data(datamodule)
        if self.lr == "auto":
            if datamodule is None:
                raise ValueError('lr="auto" needs the data as a LightningDataModule')
            self.lr = self.auto_lr(datamodule)

    def _decide_baseline(self) -> bool:
        """Whether the report's least-squares baseline is computed: ``baseline``, or for ``auto`` its
        estimated cost against this run's (one line when it is skipped)."""
        if self.baseline != "auto":
            return self.baseline == "on"
        max_epochs = self.trainer.max_epochs
        cost = baseline_cost_fraction(
            self.hparams.get("num_features", 1), max_epochs if max_epochs and max_epochs > 0 else 10**9
        )
        if cost <= BASELINE_MAX_COST:
            return True
        if self.trainer.is_global_zero:
            print(
                f"note: the least-squares baseline would cost about {cost:.0%} of this run "
                f"(n x d^2 products, d = {self.hparams.get('num_features')}): skipped; --baseline on computes it",
                file=sys.stderr,
            )
        return False

    def loss(self, prediction: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The mean squared error; override it for another loss (training and validation both use it)."""
        if y.shape != prediction.shape:  # y may come as [B, 1]; a reshape every step costs 2% of a one-sample step
            y = y.reshape(prediction.shape)
        return F.mse_loss(prediction, y)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch[0], batch[1]
        loss = self.loss(self(x), y)
        # The epoch's mean over its samples (batch_size weighs a shorter last batch) and, under DDP, over every
        # rank's. logger=False: the progress line writes it to the loggers, with the weights, at its epochs.
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(x), sync_dist=True, logger=False)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch[0], batch[1]
        # batch_size weights the epoch mean correctly when the last batch is shorter.
        self.log("val/loss", self.loss(self(x), y), batch_size=len(x), sync_dist=True)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch[0], batch[1]
        self.log("test/loss", self.loss(self(x), y), batch_size=len(x), sync_dist=True)

    def predict_step(self, batch: torch.Tensor | tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x)

    def configure_optimizers(self) -> torch.optim.Optimizer | dict:
        optimizer = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=self.momentum)
        schedulers = torch.optim.lr_scheduler
        if self.lr_scheduler == "step":
            scheduler = schedulers.StepLR(optimizer, self.step_size, self.gamma)
        elif self.lr_scheduler == "exponential":
            scheduler = schedulers.ExponentialLR(optimizer, self.gamma)
        elif self.lr_scheduler == "cosine":  # from lr down to 0 at --max_epochs
            scheduler = schedulers.CosineAnnealingLR(optimizer, max(self.trainer.max_epochs or 1, 1))
        elif self.lr_scheduler == "plateau":
            # x gamma after 2 validations without improvement; stepped only where validation ran.
            # Without validation data, on the training loss at the same epochs (what the run watches).
            plateau = schedulers.ReduceLROnPlateau(optimizer, factor=self.gamma, patience=2)
            every = self.trainer.check_val_every_n_epoch or 1
            watched = "val/loss" if has_validation_data(self.trainer) else TRAIN_LOSS
            config = {"scheduler": plateau, "monitor": watched, "frequency": every}
            return {"optimizer": optimizer, "lr_scheduler": config}
        else:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


class LinearModel(RegressionModel):
    """Trains :class:`DotProduct`: the tutorials' model, whose learned weights should equal the true ones.

    ``precondition`` (see ``conditioning.py``): ``none`` is tutorial 1's plain SGD on raw inputs;
    ``whiten`` and ``standardize`` train on conditioned inputs and report the weights in raw units;
    ``auto`` whitens up to WHITEN_MAX_FEATURES features and standardizes beyond. ``lr="auto"`` is
    SAFETY_FACTOR times the largest rate at which SGD is stable for the inputs it sees and the batch
    size (see ``stable_lr_of``).
    """

    def __init__(
        self, num_features: int = 7, bias: bool = False, precondition: Precondition = "none", **optimizer_args: Any
    ) -> None:
        """``optimizer_args``: ``lr``, ``momentum``, ``lr_scheduler``, ``step_size``, ``gamma``, as in
        :class:`RegressionModel` (LightningCLI and ``--help`` list them as this class's own)."""
        super().__init__(**optimizer_args)
        self.save_hyperparameters()
        self.net = DotProduct(num_features, bias)
        kind = resolve(precondition, num_features)
        self.preconditioner = None if kind == "none" else Preconditioner(num_features, kind, centre=bias)

    @property
    def weight(self) -> torch.Tensor:
        """The learned weights on raw inputs, one per feature: what the run should recover."""
        if self.preconditioner is None:
            return self.net.weight
        return self.preconditioner.raw_weight(self.net.weight)

    @property
    def bias(self) -> torch.Tensor | None:
        """The learned bias on raw inputs, or None when the model has none."""
        if self.preconditioner is None or self.net.bias is None:
            return self.net.bias
        return self.preconditioner.raw_bias(self.net.bias, self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Inference on raw inputs: ``x`` is one sample ``[d]`` or a batch ``[B, d]``."""
        if self.preconditioner is None:
            return self.net(x)
        # net(P (x - shift)) with P folded into the weights: one dot product, as without it.
        weight = self.weight
        if self.net.bias is None:
            return x @ weight
        return x @ weight + self.preconditioner.raw_bias(self.net.bias, weight)

    def fit_to_data(self, datamodule: L.LightningDataModule) -> None:
        conditioner = self.preconditioner
        if conditioner is not None:
            conditioner.fit(moments_of(datamodule, full=conditioner.kind == "whiten"))
        # The largest lr at which SGD is stable on the inputs it sees. Under DDP one step averages
        # the gradients of world_size batches: one batch of that many times the size.
        batch_size = batch_size_of(datamodule) * self.trainer.world_size
        transform = None if conditioner is None else (lambda x: conditioner.to(x.device)(x))
        # --lr auto trains at it, so every sample counts; a given lr is only warned about, from a sample.
        batches = training_batches(datamodule) if self.lr == "auto" else training_sample(datamodule)
        self.stable_lr = stable_lr_of(batches, self.net.bias is not None, batch_size, transform)

    def auto_lr(self, datamodule: L.LightningDataModule) -> float:
        return SAFETY_FACTOR * self.stable_lr


class MLPModel(RegressionModel):
    """Trains :class:`MLP` on targets a dot product cannot fit (``--target quadratic|sine``, real data).

    ``lr="auto"`` is 0.1 / var(y) at batch 32 or more (inputs and targets are standardized, so one
    rate suits any scale), scaled by sqrt(batch / 32) below.
    """

    def __init__(
        self,
        num_features: int = 7,
        hidden_sizes: list[int] = [64, 64],  # noqa: B006 -- read-only; a list so the CLI and YAML take [a, b]
        **optimizer_args: Any,
    ) -> None:
        """``optimizer_args`` as in :class:`LinearModel`."""
        super().__init__(**optimizer_args)
        if not hidden_sizes or not all(isinstance(h, int) and h >= 1 for h in hidden_sizes):
            raise ValueError(f"hidden_sizes {hidden_sizes}: must be a non-empty list of integers >= 1")
        self.save_hyperparameters()
        self.net = MLP(num_features, hidden_sizes)

    def fit_to_data(self, datamodule: L.LightningDataModule) -> None:
        self.net.fit_scaling(moments_of(datamodule, full=False))

    def auto_lr(self, datamodule: L.LightningDataModule) -> float:
        # 0.1 for the standardized network at a (global) batch of 32 or more -- 0.05-0.1 reached the
        # lowest validation loss on the sine target -- and less for smaller, noisier batches
        # (square-root scaling; 0.1 diverged at batch 1). The loss is in raw units, whose
        # gradients are y_std^2 times larger.
        batch_size = batch_size_of(datamodule) * self.trainer.world_size
        return 0.1 * min(1.0, batch_size / 32) ** 0.5 / self.net.y_std.item() ** 2
