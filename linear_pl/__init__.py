"""linear_pl: train any LightningModule on any LightningDataModule; the tutorials' regression as its example.

``linear_pl.runner`` is the run machinery (command line, run directory, checkpoints, results,
errors): keep it when you copy the template. ``linear_pl.regression`` is the tutorials' example
(networks, synthetic and CSV data, closed form, conditioning, the weights report): replace it.
"""

import sys

from linear_pl.regression import csv_data, data, model
from linear_pl.regression.data import SyntheticDataModule
from linear_pl.regression.model import DotProduct, LinearModel, MLPModel

# Where these modules lived before the split: configs and checkpoints written then name their
# classes by these paths (linear_pl.model.LinearModel), and still load.
sys.modules.update({"linear_pl.model": model, "linear_pl.data": data, "linear_pl.csv_data": csv_data})

__all__ = ["DotProduct", "LinearModel", "MLPModel", "SyntheticDataModule"]
