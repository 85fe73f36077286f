"""Real tabular data from a file: one target column, numeric features, a seeded validation (and test) split.

``--data csv --data.path FILE --data.target_column NAME``; a ``.parquet``, ``.feather`` or
``.arrow`` file is read as such, anything else as CSV (``tables.py``). The file is read once and
checked: anything that is not a finite number is named by file, line (or row) and column, before any
training or run directory. Like the synthetic data, it then lives in tensors on the training device
and batches are slices of them.
"""

from functools import cached_property

import lightning as L
import torch
from torch.utils.data import DataLoader

from linear_pl.regression.data import EVAL_BATCH_SIZE, sliced_loader
from linear_pl.regression.tables import read_table
from linear_pl.runner.errors import UsageError


class CSVDataModule(L.LightningDataModule):
    """The rows of a CSV (with a header), Parquet or Feather file: ``target_column`` is y,
    ``feature_columns`` (default: all the others, in file order) are x. The last
    ``round(val_fraction * n)`` rows of a permutation seeded by ``seed`` are the validation set, the
    ``round(test_fraction * n)`` before them the test set."""

    def __init__(
        self,
        path: str,
        target_column: str,
        feature_columns: list[str] | None = None,
        val_fraction: float = 0.2,
        test_fraction: float = 0.0,
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not (isinstance(batch_size, int) and not isinstance(batch_size, bool) and batch_size >= 1):
            raise ValueError(f"batch_size {batch_size}: must be an integer >= 1")
        for name, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not (isinstance(fraction, (int, float)) and 0 <= fraction < 1):
                raise ValueError(f"{name} {fraction}: must be in [0, 1)")
        if val_fraction + test_fraction >= 1:
            raise ValueError(
                f"test_fraction {test_fraction}: with val_fraction {val_fraction}, leaves no training rows"
            )
        if feature_columns is not None and not feature_columns:
            raise ValueError("feature_columns []: give at least one column, or leave it out for all")
        if feature_columns is not None and target_column in feature_columns:
            raise ValueError(f"feature_columns {feature_columns}: holds the target column {target_column!r}")
        self.save_hyperparameters()
        self.path, self.target_column = str(path), target_column
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self._feature_columns = feature_columns

    @property
    def num_features(self) -> int:
        """How many feature columns: read from the file (checking all of it) the first time it is asked."""
        return self._table[0].shape[1]

    @property
    def feature_names(self) -> list[str]:
        """The feature columns, in the order of x's columns."""
        self._table  # noqa: B018 -- reads and checks the file
        return self._feature_names

    @cached_property
    def _table(self) -> tuple[torch.Tensor, torch.Tensor]:
        x, y, self._feature_names = read_table(self.path, self.target_column, self._feature_columns)
        n_train = len(x) - sum(self._held_out(len(x)))
        if n_train < x.shape[1] + 1:
            raise UsageError(
                f"{self.path}: {n_train} training rows for {x.shape[1]} features: "
                "too few to determine the weights (need at least features + 1)"
            )
        return x, y

    def _held_out(self, n: int) -> tuple[int, int]:
        """How many of ``n`` rows are validation rows, and how many test rows."""
        return round(self.val_fraction * n), round(self.test_fraction * n)

    def setup(self, stage: str | None = None) -> None:
        x, y = self._table
        n_val, n_test = self._held_out(len(x))
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.seed))
        # Validation last, test before it: without a test set the split is what it always was.
        n_train = len(x) - n_val - n_test
        train, test, val = order[:n_train], order[n_train : n_train + n_test], order[n_train + n_test :]
        device = self.trainer.strategy.root_device if self.trainer else torch.device("cpu")
        self.train_x, self.train_y = x[train].to(device), y[train].to(device)
        self.val_x, self.val_y = x[val].to(device), y[val].to(device)
        self.test_x, self.test_y = x[test].to(device), y[test].to(device)

    def train_dataloader(self) -> DataLoader:
        return sliced_loader(self.trainer, self.train_x, self.train_y, self.batch_size, self.shuffle, self.seed)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.val_x, self.val_y)

    def test_dataloader(self) -> DataLoader:
        """The test rows (none unless ``test_fraction`` > 0: then no test runs)."""
        return self._eval_loader(self.test_x, self.test_y)

    def _eval_loader(self, x: torch.Tensor, y: torch.Tensor) -> DataLoader:
        return sliced_loader(self.trainer, x, y, max(self.batch_size, EVAL_BATCH_SIZE), False, self.seed)
