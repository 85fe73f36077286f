"""What linear_pl reads from any LightningDataModule: an optional protocol, and what it does without it.

A data module needs nothing beyond Lightning's ``train_dataloader`` (and ``val_dataloader``) yielding
``(x, y)`` batches, x ``[B, d]`` and y ``[B]`` or ``[B, 1]``. It may also expose, and the shipped ones do:

- ``num_features``: d, to size the model before any data is read (else: the first batch's x; see
  ``runner/sizing.py``);
- ``batch_size``: the training batch size, for the stable learning rate (else: the first batch's);
- ``train_x``, ``train_y``, ``val_x``, ``val_y`` after ``setup``: the data as tensors, read in large
  chunks instead of through the loaders;
- ``true_weights`` (and ``true_bias``): the weights that made the data. Only then does a run compare
  its weights with the truth and stop once converged: the tutorial extras.
- ``feature_names``: labels for the weights table.
"""

from collections.abc import Iterable

import lightning as L
import torch

from linear_pl.regression.closed_form import Batches, Moments, tensor_batches
from linear_pl.runner.sizing import first_batch_x


def _xy(batch: object) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = batch[0], batch[1]  # a tuple, a list, or TensorDataset's pair
    return x, y.reshape(len(x))


def training_batches(datamodule: L.LightningDataModule) -> Batches:
    """The training data as ``(x, y)`` batches: big chunks of ``train_x`` if held, else the train loader."""
    if hasattr(datamodule, "train_x"):
        return tensor_batches(datamodule.train_x, datamodule.train_y)
    return _loader_batches(datamodule.train_dataloader())


def validation_batches(datamodule: L.LightningDataModule) -> Batches:
    """The validation data likewise; nothing if the data module has none."""
    if hasattr(datamodule, "val_x"):
        return tensor_batches(datamodule.val_x, datamodule.val_y)
    try:
        loader = datamodule.val_dataloader()
    except NotImplementedError:  # Lightning's default for a data module without validation
        return []
    return _loader_batches(loader)


def _loader_batches(loader: Iterable) -> Batches:
    # A shuffling loader draws from the global RNG: reading the data must not change the run's order.
    with torch.random.fork_rng():
        for batch in loader:
            yield _xy(batch)


def batch_size_of(datamodule: L.LightningDataModule) -> int:
    """The training batch size: ``batch_size`` if exposed, else the length of the first batch."""
    batch_size = getattr(datamodule, "batch_size", None)
    return int(batch_size) if batch_size is not None else len(first_batch_x(datamodule))


def true_weights_of(datamodule: L.LightningDataModule | None) -> list[float] | None:
    """The weights that made the data, when the data knows them."""
    weights = getattr(datamodule, "true_weights", None)
    return None if weights is None else [float(w) for w in weights]


def y_mean_square_of(datamodule: L.LightningDataModule) -> float:
    """The mean of y squared over the training data (reads y alone: cheap beside x's moments)."""
    total, count = 0.0, 0
    for _, y in training_batches(datamodule):
        total, count = total + y.cpu().double().square().sum().item(), count + len(y)
    return total / count


def moments_of(datamodule: L.LightningDataModule, full: bool = True) -> Moments:
    """The training data's :class:`Moments`, computed once per data module and kept on it.

    The model (conditioning, scaling), the convergence stop and the report all need them; one pass
    over the data serves them all. The diagonal moments are cheaper (d, not d x d, per sample): the
    model asks for the full ones at once when the report's least-squares baseline will need them,
    and the diagonal ones are then cut from those.
    """
    cached = getattr(datamodule, "_linear_pl_moments", None)
    if cached is None or (full and not cached.full):
        cached = Moments.of(training_batches(datamodule), full)
        datamodule._linear_pl_moments = cached
    return cached if full else cached.diagonal()


# A pass that only serves a warning (the too-large --lr check) reads this many rows at most.
SAMPLE_ROWS = 65536


def training_sample(datamodule: L.LightningDataModule, rows: int = SAMPLE_ROWS) -> Batches:
    """At most ``rows`` training samples as ``(x, y)`` batches: a seeded random choice of ``train_x``'s
    rows if held (the run's random state untouched), else the loader's first batches."""
    if hasattr(datamodule, "train_x"):
        x, y = datamodule.train_x, datamodule.train_y
        if len(x) <= rows:
            return tensor_batches(x, y)
        chosen = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:rows].to(x.device)
        return tensor_batches(x[chosen], y[chosen])
    return _first_rows(_loader_batches(datamodule.train_dataloader()), rows)


def _first_rows(batches: Batches, rows: int) -> Batches:
    taken = 0
    for x, y in batches:
        if taken >= rows:
            return
        taken += len(x)
        yield x, y
