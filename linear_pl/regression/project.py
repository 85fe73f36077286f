"""The regression example as a project of the run machinery: its classes as the default, their short
names, the tutorials' presets, and the tutorial's run (up to 3000 epochs, a line and a validation every 10,
stop once converged)."""

import sys
import warnings
from pathlib import Path

from lightning.pytorch.utilities.warnings import PossibleUserWarning

from linear_pl.regression import csv_data, data, model
from linear_pl.runner.project import Project

# Where these modules lived before the split: configs and checkpoints written then name their classes by
# these paths (linear_pl.model.LinearModel), and still load.
sys.modules.update({"linear_pl.model": model, "linear_pl.data": data, "linear_pl.csv_data": csv_data})

DESCRIPTION = """\
linear_pl trains any LightningModule on any LightningDataModule; by default tutorial 1's dot product,
recovering known weights from synthetic data with MSE and SGD. --model takes linear, mlp or the class
path of any LightningModule; --data takes synthetic, csv (--data.path FILE --data.target_column NAME)
or the class path of any LightningDataModule. --preset seed-4w|seed-7w|lntx|lntx-1w|mlp-sine runs a
shipped config. --monitor NAME --mode min|max: what best.ckpt and early stopping follow (val/loss).
Every argument of the chosen model and data is a flag (--lr, --batch_size, --bias, --precondition,
--hidden_sizes, ...), the same as --model.NAME or --data.NAME; also --max_epochs, --patience, --seed,
--accelerator, --devices, --precision, --ckpt_path; every Trainer argument as --trainer.NAME;
--optimizer CLASS and --lr_scheduler CLASS as LightningCLI has them.
`train.py validate|test|predict --ckpt_path best|last|PATH` rebuilds that checkpoint's run."""


def silence_example_noise() -> None:
    """Lightning's advice that does not apply to this example's data, dropped by message; nothing else."""
    # Data lives in tensors on the device: worker processes would only add copies.
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    # No validation set (--num_val_samples 0, --val_fraction 0) is a choice; the report says so.
    warnings.filterwarnings("ignore", message=r"Total length of `DataLoader` across ranks is zero")
    # The example's models log once an epoch, never per step, so no epoch is too short to log. (Lightning's
    # log_every_n_steps stays 50: at 1 it would look for step metrics at every step, 3% of a step here.)
    short_epochs = r"The number of training batches \(\d+\) is smaller than the logging interval"
    warnings.filterwarnings("ignore", message=short_epochs, category=PossibleUserWarning)


PROJECT = Project(
    model="linear_pl.regression.model.LinearModel",
    data="linear_pl.regression.data.SyntheticDataModule",
    model_names={"linear": "linear_pl.regression.model.LinearModel", "mlp": "linear_pl.regression.model.MLPModel"},
    data_names={
        "synthetic": "linear_pl.regression.data.SyntheticDataModule",
        "csv": "linear_pl.regression.csv_data.CSVDataModule",
    },
    presets=Path(__file__).parent / "presets",
    description=DESCRIPTION,
    trainer_defaults={"max_epochs": 3000},  # an upper bound: runs stop once converged or on a plateau
    model_defaults={"precondition": "auto"},  # the command's default run; LinearModel(...) in Python stays plain SGD
    log_every_n_epochs=10,
    silence=silence_example_noise,
)
