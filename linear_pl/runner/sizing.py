"""A model sized by its data: a model that takes ``num_features`` is given the width of the data's inputs.

LightningCLI links ``--data`` to ``--model.num_features`` with :func:`num_features_of`, so that neither
the command line nor a config has to say the width twice.
"""

import lightning as L
import torch


def first_batch_x(datamodule: L.LightningDataModule) -> torch.Tensor:
    """The inputs of the first training batch; the data is set up if need be and the random state kept."""
    datamodule.prepare_data()
    datamodule.setup("fit")  # Lightning calls it again in fit; data modules expect that
    with torch.random.fork_rng():  # a shuffling loader draws its order from the global RNG
        batch = next(iter(datamodule.train_dataloader()))
    return batch[0]


def num_features_of(datamodule: L.LightningDataModule) -> int:
    """The number of input features: ``num_features`` if the data module says, else the first batch's width."""
    num_features = getattr(datamodule, "num_features", None)
    return int(num_features) if num_features is not None else first_batch_x(datamodule).shape[-1]
