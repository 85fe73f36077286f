"""linear_pl: the simplest neural network -- recover known weights with MSE and SGD -- on PyTorch Lightning."""

from linear_pl.data import SyntheticDataModule
from linear_pl.model import DotProduct, LinearModel

__all__ = ["DotProduct", "LinearModel", "SyntheticDataModule"]
