"""A data module as any Lightning user writes one: scikit-learn's diabetes set (442 patients, 10 features).

Nothing here knows linear_pl. From the repository root:
    python scripts/train.py --data examples.diabetes_data.DiabetesData --bias
"""

import lightning as L
import torch
from sklearn.datasets import load_diabetes
from torch.utils.data import DataLoader, TensorDataset


class DiabetesData(L.LightningDataModule):
    def __init__(self, batch_size: int = 32, val_size: int = 100, seed: int = 0) -> None:
        super().__init__()
        self.batch_size, self.val_size, self.seed = batch_size, val_size, seed

    def setup(self, stage: str | None = None) -> None:
        x, y = (torch.tensor(a, dtype=torch.float32) for a in load_diabetes(return_X_y=True))
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.seed))
        train, val = order[: -self.val_size], order[-self.val_size :]
        self.train_set, self.val_set = TensorDataset(x[train], y[train]), TensorDataset(x[val], y[val])

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.val_size)
