"""Synthetic regression data, made in memory: y = x @ true_weights (+ true_bias) (+ noise).

``target`` picks the function: ``linear`` (the tutorials'), or, for models beyond a dot product,
``quadratic`` (y = sum_i w_i z_i^2) and ``sine`` (y = sum_i w_i sin(pi z_i)), where z is x rescaled
from [low, high] to [-1, 1].
"""

import math
from typing import Literal

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from linear_pl.runner.internals import epoch_about_to_run

# The seven weights of tutorial 1's full program.
TUTORIAL_WEIGHTS = [2.0, 3.0, 4.0, 7.0, 11.0, 5.0, 13.0]

# Validation only measures the loss, so it uses few large batches whatever the training batch size.
EVAL_BATCH_SIZE = 4096

# Data is generated this many numbers at a time (16 MB of float32).
_CHUNK_ELEMENTS = 1 << 22


def _check_arguments(true_weights, num_samples, num_val_samples, low, high, noise_std, batch_size) -> None:
    # Caught here, before any training or run directory: each message names the argument, the value
    # and what is allowed (the command line spells the argument as its flag).
    def need(ok: bool, name: str, value: object, allowed: str) -> None:
        if not ok:
            raise ValueError(f"{name} {value}: {allowed}")

    numbers = all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in true_weights or [])
    need(bool(true_weights) and numbers, "true_weights", true_weights, "must be a non-empty list of numbers")
    need(all(math.isfinite(w) for w in true_weights), "true_weights", true_weights, "must be finite")
    need(_is_int(batch_size) and batch_size >= 1, "batch_size", batch_size, "must be an integer >= 1")
    need(_is_int(num_samples) and num_samples >= 1, "num_samples", num_samples, "must be an integer >= 1")
    need(
        num_samples >= len(true_weights),
        "num_samples",
        num_samples,
        f"fewer samples than the {len(true_weights)} weights: the weights would not be identifiable",
    )
    need(_is_int(num_val_samples) and num_val_samples >= 0, "num_val_samples", num_val_samples, "must be >= 0")
    need(low <= high, "low", low, f"must be <= high ({high})")
    need(math.isfinite(noise_std) and noise_std >= 0, "noise_std", noise_std, "must be >= 0")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class SlicedBatches(Dataset):
    """Batch ``i`` is rows ``[i*b, (i+1)*b)`` of ``x`` and ``y``: views of the tensors, never copies.

    A DataLoader over ``TensorDataset`` would gather and collate sample by sample (~70x slower at
    batch 4096); here each step costs one slice, on whatever device the tensors live on.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> None:
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return self.x[rows], self.y[rows]


def sliced_loader(
    trainer: L.Trainer | None, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool, seed: int
) -> DataLoader:
    """A DataLoader of :class:`SlicedBatches`, whose order (shuffled or not) depends only on (seed, epoch).

    For any data module that holds its data in tensors on the device (the synthetic and CSV data).
    """
    batches = SlicedBatches(x, y, batch_size)
    # We build the DistributedSampler ourselves, also for one process: Lightning would inject one
    # with shuffle=True under DDP whatever --shuffle says, and its single-process RandomSampler
    # draws from the global RNG, which checkpoints do not hold. This one's order depends only on
    # (seed, epoch) -- Lightning calls set_epoch -- so a resumed run sees the same batches.
    sampler = DistributedSampler(
        batches,
        num_replicas=trainer.world_size if trainer else 1,
        rank=trainer.global_rank if trainer else 0,
        shuffle=shuffle,
        seed=seed,
    )
    # Set now the epoch Lightning will set, or a resumed run would replay an earlier epoch's order.
    sampler.set_epoch(epoch_about_to_run(trainer) if trainer else 0)
    return DataLoader(batches, batch_size=None, sampler=sampler)


class SyntheticDataModule(L.LightningDataModule):
    """Tutorial 1's data by default: 10 samples of 7 integer features in [1, 100], y = x @ w exactly.

    The training set depends only on (seed, num_samples, true_weights, true_bias, low, high,
    noise_std): validation samples are drawn after it from the same generator, so asking for more
    of them never changes the training data. Data is drawn on the CPU, where torch's generator gives
    the same numbers on every machine, then moved once to the training device.
    """

    def __init__(
        self,
        true_weights: list[float] = TUTORIAL_WEIGHTS,
        true_bias: float | None = None,
        num_samples: int = 10,
        num_val_samples: int = 10,
        low: int = 1,
        high: int = 100,
        noise_std: float = 0.0,
        batch_size: int = 1,
        shuffle: bool = False,
        seed: int = 0,
        target: Literal["linear", "quadratic", "sine"] = "linear",
    ) -> None:
        super().__init__()
        _check_arguments(true_weights, num_samples, num_val_samples, low, high, noise_std, batch_size)
        self.save_hyperparameters()
        self.true_weights = [float(w) for w in true_weights]
        self.true_bias = true_bias
        self.num_samples, self.num_val_samples = num_samples, num_val_samples
        self.low, self.high, self.noise_std = low, high, noise_std
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.target = target

    @property
    def num_features(self) -> int:
        """How many features each sample has: one per true weight."""
        return len(self.true_weights)

    def _draw(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        # Integers in [low, high] inclusive, like random.randint, drawn straight into float32 (the
        # same numbers as an int64 draw, four times faster). Drawn in chunks of rows -- the generator
        # gives the same numbers as one big draw -- so that temporaries stay small beside the result.
        exact = self._exact_in_float32()
        dtype = torch.float32 if exact else torch.float64
        weights = torch.tensor(self.true_weights, dtype=dtype)
        x = torch.empty(n, self.num_features)
        y = torch.empty(n, dtype=dtype)
        chunk_rows = max(1, _CHUNK_ELEMENTS // self.num_features)
        for start in range(0, n, chunk_rows):
            rows = slice(start, min(start + chunk_rows, n))
            shape = (rows.stop - start, self.num_features)
            chunk = torch.randint(self.low, self.high + 1, shape, generator=generator, dtype=torch.float32)
            x[rows] = chunk
            y[rows] = self._features(chunk.to(dtype)) @ weights
        y += self.true_bias or 0.0
        y += self.noise_std * torch.randn(n, generator=generator, dtype=torch.float64).to(dtype)
        return x, y.float()

    def _exact_in_float32(self) -> bool:
        # y = x @ w summed in float32 is exact when every term and partial sum is an integer below
        # 2^24 -- tutorial 1's data, the benchmark's -- and then ten times cheaper than float64.
        # Otherwise y is summed in float64 and rounded once.
        integers = all(float(w).is_integer() for w in [*self.true_weights, self.true_bias or 0.0])
        largest = max(abs(self.low), abs(self.high)) * sum(abs(w) for w in self.true_weights) + abs(self.true_bias or 0)
        return self.target == "linear" and integers and largest < 2**24

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        if self.target == "linear":
            return x
        mid, half = (self.high + self.low) / 2, max((self.high - self.low) / 2, 1)
        z = (x - mid) / half
        return z.square() if self.target == "quadratic" else torch.sin(math.pi * z)

    def setup(self, stage: str | None = None) -> None:
        """Draw the data, once: a later call (Lightning's, after yours) keeps it, moved to the trainer's device."""
        if not hasattr(self, "train_x"):
            generator = torch.Generator().manual_seed(self.seed)
            self.train_x, self.train_y = self._draw(self.num_samples, generator)
            self.val_x, self.val_y = self._draw(self.num_val_samples, generator)
        if self.trainer is not None:
            device = self.trainer.strategy.root_device
            self.train_x, self.train_y = self.train_x.to(device), self.train_y.to(device)
            self.val_x, self.val_y = self.val_x.to(device), self.val_y.to(device)

    def train_dataloader(self) -> DataLoader:
        return sliced_loader(self.trainer, self.train_x, self.train_y, self.batch_size, self.shuffle, self.seed)

    def val_dataloader(self) -> DataLoader:
        eval_batch_size = max(self.batch_size, EVAL_BATCH_SIZE)
        return sliced_loader(self.trainer, self.val_x, self.val_y, eval_batch_size, False, self.seed)
