"""The tutorials' regression example: networks, data, closed form, conditioning, the weights report.

Replace it with yours (and ``linear_pl/registry.py``, which registers it)."""

from linear_pl.regression.data import SyntheticDataModule
from linear_pl.regression.model import DotProduct, LinearModel, MLPModel

__all__ = ["DotProduct", "LinearModel", "MLPModel", "SyntheticDataModule"]
