"""Preconditioned inputs: SGD sees x~ = P (x - shift), the model keeps its weights in raw units.

Tutorial 1's features are all positive integers in [1, 100], so X'X has one eigenvalue far above the
others and SGD, held below the stability limit of that one direction, crawls along the rest: 144 to
2405 epochs over ten data seeds. Whitening, P = (X'X / n)^(-1/2), makes every direction alike; it
took 6-8 epochs on the same seeds. Scaling each feature alone does not help there (all features
have the same scale), but it is what a large d can afford.

The dot product on x~ with weights v is a dot product on x with weights w = P v (P is symmetric),
and with a bias b~, a bias b = b~ - w . shift: the model folds P into its weights instead of
transforming every batch, so a step costs what it costs without preconditioning.
"""

from typing import Literal

import torch
from torch import nn

from linear_pl.regression.closed_form import Moments

Precondition = Literal["none", "standardize", "whiten", "auto"]

# "auto" whitens up to this many features and standardizes beyond: whitening's extra costs, the
# d x d moments and the stable-lr pass over x~ (n d^2 multiply-adds each), grow with d^2; at
# d = 256 on the 2M-sample benchmark they took longer than its ten epochs.
WHITEN_MAX_FEATURES = 128

# Directions with less than this fraction of the largest variance are not amplified further: a
# constant or duplicated feature would otherwise blow up (its variance is 0 up to rounding). Float32
# inputs carry a relative error of 6e-8, so variances below (6e-8)^2 = 4e-15 of the largest are
# rounding; the eigenvalues of the float64 moments are exact to about d * 2e-16 of the largest. A
# real direction can lie far below 1e-10: NIST's Longley table (examples/longley.csv) has a centred
# covariance whose smallest eigenvalue is 3e-12 of its largest. At a floor of 1e-10 that direction
# stayed 33 times under-scaled and SGD crawled along it (2.6% off the certified coefficients after
# 1100 epochs); at 1e-13 it is whitened like the others (within 0.1% by epoch 60).
_RELATIVE_FLOOR = 1e-13


def resolve(precondition: Precondition, num_features: int) -> str:
    """``auto`` made concrete for ``num_features`` features; any other choice as given."""
    if precondition == "auto":
        return "whiten" if num_features <= WHITEN_MAX_FEATURES else "standardize"
    return precondition


class Preconditioner(nn.Module):
    """P and the shift, computed from the training data's moments; buffers, so saved in checkpoints.

    With a bias the inputs are centred (shift = mean, P from the covariance): the bias takes the
    mean, and what remains is the shape of the data. Without a bias nothing can absorb a shift, so
    P comes from the second moment about zero. ``whiten`` keeps the full P ``[d, d]``,
    ``standardize`` its diagonal ``[d]``.
    """

    def __init__(self, num_features: int, kind: Literal["standardize", "whiten"], centre: bool) -> None:
        super().__init__()
        self.kind, self.centre = kind, centre
        self.register_buffer("shift", torch.zeros(num_features))
        self.register_buffer("matrix", torch.eye(num_features) if kind == "whiten" else torch.ones(num_features))

    @torch.no_grad()
    def fit(self, moments: Moments) -> None:
        """Take P and the shift from the training data."""
        second = moments.second_moment(centred=self.centre)
        if self.kind == "whiten":
            eigenvalues, vectors = torch.linalg.eigh(second)
            floor = eigenvalues.max().clamp_min(1e-300) * _RELATIVE_FLOOR
            p = vectors @ torch.diag(eigenvalues.clamp_min(floor).rsqrt()) @ vectors.T
        else:
            p = second.clamp_min(second.max().clamp_min(1e-300) * _RELATIVE_FLOOR).rsqrt()
        # Rounded to the buffers' dtype on the host: float64 never reaches the device.
        self.matrix.copy_(p.to(self.matrix.dtype))
        self.shift.copy_((moments.mean if self.centre else torch.zeros_like(moments.mean)).to(self.shift.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x~, the inputs SGD sees (for the stable learning rate; training folds P into the weights)."""
        centred = x - self.shift
        return centred @ self.matrix if self.kind == "whiten" else centred * self.matrix

    def raw_weight(self, v: torch.Tensor) -> torch.Tensor:
        """w = P v: the weights on raw inputs."""
        return self.matrix @ v if self.kind == "whiten" else self.matrix * v

    def raw_bias(self, bias: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """b = b~ - w . shift: the bias on raw inputs."""
        return bias - self.shift @ weight
