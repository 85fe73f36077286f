"""The networks: plain ``nn.Module``s, with nothing of training in them.

``DotProduct`` is the tutorials' model; ``MLP`` is the second example, a network a dot product's
training, logging and checkpoints serve unchanged.
"""

import torch
from torch import nn

from linear_pl.regression.closed_form import Moments


class DotProduct(nn.Module):
    """Tutorial 1's ``MyLinear``: y = x @ weight, plus a bias if asked for (tutorial 2's nn.Linear)."""

    def __init__(self, num_features: int, bias: bool = False) -> None:
        super().__init__()
        # randn, as both tutorials start: the first thing a learner watches is these numbers moving.
        self.weight = nn.Parameter(torch.randn(num_features))
        self.bias = nn.Parameter(torch.randn(())) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` is one sample ``[d]`` or a batch ``[B, d]``; returns ``[]`` or ``[B]``."""
        y = x @ self.weight
        return y if self.bias is None else y + self.bias


class MLP(nn.Module):
    """A small multi-layer perceptron, y = f(x): Linear -> ReLU per hidden size, then Linear to one output.

    Inputs and targets are standardized inside the network with statistics of the training data
    (buffers, saved in checkpoints), so raw features in [1, 100] and targets of any scale train at
    the same learning rate, and ``forward`` takes and returns raw units.
    """

    def __init__(self, num_features: int, hidden_sizes: list[int]) -> None:
        super().__init__()
        sizes = [num_features, *hidden_sizes]
        layers: list[nn.Module] = []
        for inputs, outputs in zip(sizes, sizes[1:]):
            layers += [nn.Linear(inputs, outputs), nn.ReLU()]
        self.layers = nn.Sequential(*layers, nn.Linear(sizes[-1], 1))
        self.register_buffer("x_mean", torch.zeros(num_features))
        self.register_buffer("x_std", torch.ones(num_features))
        self.register_buffer("y_mean", torch.zeros(()))
        self.register_buffer("y_std", torch.ones(()))

    @torch.no_grad()
    def fit_scaling(self, moments: Moments) -> None:
        """Take the standardization statistics from the training data's moments."""
        unbiased = moments.count / max(moments.count - 1, 1)  # as torch.std
        # Rounded to float32 on the host: float64 never reaches the device.
        self.x_mean.copy_(moments.mean.to(self.x_mean.dtype))
        self.x_std.copy_((moments.second_moment(centred=True) * unbiased).sqrt().clamp_min(1e-6).to(self.x_std.dtype))
        self.y_mean.fill_(moments.y_mean)
        y_var = (moments.y_mean_square - moments.y_mean**2) * unbiased
        self.y_std.fill_(max(y_var, 1e-12) ** 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` is one sample ``[d]`` or a batch ``[B, d]``; returns ``[]`` or ``[B]``."""
        z = (x - self.x_mean) / self.x_std
        return self.layers(z).squeeze(-1) * self.y_std + self.y_mean
