"""What the training data alone says: its moments, the largest stable learning rate, the least-squares fit."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import torch

# --lr auto trains at this fraction of the stability limit. At exactly half, SGD on the sample with
# the largest norm lands on that sample's solution in one step; over 10 data seeds of tutorial 1's
# data it converged in the fewest epochs of the fractions we tried (0.5, 0.7, 0.9 all work).
SAFETY_FACTOR = 0.5

# Up to this many features the products x x' are summed in float64: whitening and the least-squares
# fit of raw, uncentred features need it (float32 left errors of 1e-4 on tutorial 1's weights).
# Beyond, float32 products on centred chunks, summed in float64: the float64 Gram matrix of the
# 2M x 256 benchmark took seconds, longer than its ten epochs.
FLOAT64_MAX_FEATURES = 128

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class Moments:
    """Sums over the training samples: enough for means, (co)variances and least squares.

    Sums are of ``x - shift``, where ``shift`` is the first batch's mean (up to FLOAT64_MAX_FEATURES
    features): features far from zero (a year, a price) would otherwise lose their variance to
    cancellation. ``sum_xx`` is the full
    ``[d, d]`` matrix when ``full``, its diagonal ``[d]`` otherwise. All float64, on the CPU: float64
    arithmetic happens only there (Apple's MPS has no float64), after a chunk is moved to the host.
    """

    count: int
    shift: torch.Tensor
    sum_x: torch.Tensor
    sum_xx: torch.Tensor
    sum_xy: torch.Tensor
    sum_y: float
    sum_yy: float
    full: bool

    @classmethod
    def of(cls, batches: Batches, full: bool = True) -> "Moments":
        """One pass over ``(x, y)`` batches of any size, on any device."""
        moments = None
        for x, y in batches:
            if len(x) == 0:
                continue
            precise, dtype = x.shape[1] <= FLOAT64_MAX_FEATURES, x.dtype
            if precise:  # float64 products, on the host (a copy of each chunk: d is small here)
                x = x.cpu().double()
            y = y.reshape(len(x)).to(x.device, x.dtype)
            if moments is None:
                # Centring costs a copy of each chunk: worth it where the products are exact (float64).
                # The first chunk's mean, rounded to the data's own precision.
                shift = x.mean(dim=0).to(dtype).double() if precise else torch.zeros(x.shape[1], dtype=torch.float64)
                zeros = torch.zeros(x.shape[1], dtype=torch.float64)
                square = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64) if full else zeros.clone()
                moments = cls(0, shift, zeros.clone(), square, zeros.clone(), 0.0, 0.0, full)
            centred = x - moments.shift if precise else x  # else float32 products on the device, summed on the host
            moments.count += len(x)
            moments.sum_x += centred.sum(dim=0).cpu().double()
            moments.sum_xx += ((centred.T @ centred) if full else centred.square().sum(dim=0)).cpu().double()
            moments.sum_xy += (centred.T @ y).cpu().double()
            y = y.cpu().double()
            moments.sum_y += y.sum().item()
            moments.sum_yy += y.square().sum().item()
        if moments is None:
            raise ValueError("the training data is empty")
        return moments

    def diagonal(self) -> "Moments":
        """The same moments with ``sum_xx`` cut to its diagonal: what ``full=False`` would have summed."""
        if not self.full:
            return self
        return replace(self, sum_xx=self.sum_xx.diagonal().clone(), full=False)

    @property
    def mean(self) -> torch.Tensor:
        """The features' mean, ``[d]``."""
        return self.shift + self.sum_x / self.count

    def second_moment(self, centred: bool) -> torch.Tensor:
        """``X'X / n`` (about zero) or the covariance (about the mean): ``[d, d]``, or its diagonal."""
        inner = self.sum_x / self.count
        outer = torch.outer if self.full else torch.mul
        about_shift = self.sum_xx / self.count
        if centred:
            return about_shift - outer(inner, inner)
        return about_shift + outer(inner, self.shift) + outer(self.shift, inner) + outer(self.shift, self.shift)

    @property
    def y_mean(self) -> float:
        """The targets' mean."""
        return self.sum_y / self.count

    @property
    def y_mean_square(self) -> float:
        """The mean of y squared."""
        return self.sum_yy / self.count

    def least_squares(self, bias: bool) -> tuple[list[float], float | None]:
        """The closed-form minimiser of the training MSE: the best any optimizer could reach."""
        if not self.full:
            raise ValueError("least squares needs the full moments (full=True)")
        n, mean = self.count, self.mean
        if bias:  # centred: the bias takes the means
            matrix = self.second_moment(centred=True)
            vector = self.sum_xy / n - (self.sum_x / n) * self.y_mean
        else:
            matrix = self.second_moment(centred=False)
            vector = (self.sum_xy + self.shift * self.sum_y) / n
        # The "gelsd" driver gives the minimum-norm solution when the data is rank-deficient (fewer
        # distinct samples than features).
        weights = torch.linalg.lstsq(matrix, vector.unsqueeze(1), driver="gelsd").solution[:, 0]
        return weights.tolist(), (self.y_mean - mean @ weights).item() if bias else None


# The d x d baseline's cost against an epoch's, measured on the 2M x 256 benchmark (float32 products:
# 1.1 s against 10 epochs in 8.3 s): about d / (230 x epochs) of a run. Both scale with n. Up to
# FLOAT64_MAX_FEATURES features the products are float64 on the host, about 4 times slower.
BASELINE_COST_PER_FEATURE_EPOCH = 1 / 230


def baseline_cost_fraction(num_features: int, epochs: int) -> float:
    """An estimate of what the least-squares baseline (n d^2 products) costs, as a fraction of a run."""
    slower = 4 if num_features <= FLOAT64_MAX_FEATURES else 1
    return slower * num_features * BASELINE_COST_PER_FEATURE_EPOCH / max(epochs, 1)


def tensor_batches(x: torch.Tensor, y: torch.Tensor, rows: int = 65536) -> Batches:
    """``(x, y)`` in chunks of ``rows``: views, so that temporaries stay small beside the data."""
    return zip(x.split(rows), y.split(rows))


def least_squares(x: torch.Tensor, y: torch.Tensor, bias: bool = False) -> tuple[list[float], float | None]:
    """The least-squares fit of in-memory data (see :meth:`Moments.least_squares`)."""
    return Moments.of(tensor_batches(x, y)).least_squares(bias)


def largest_batch_mean(sq_norms: torch.Tensor, batch_size: int) -> float:
    """The largest mean any batch of ``batch_size`` samples can have: the mean of the largest norms.

    Whatever the order (fixed, shuffled, split across processes), no batch exceeds it.
    """
    k = min(batch_size, len(sq_norms))
    return sq_norms.topk(k).values.mean().item()


def stable_lr_of(
    batches: Batches,
    bias: bool = False,
    batch_size: int = 1,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> float:
    """Largest learning rate at which SGD on mean squared error cannot diverge on these inputs.

    A step on batch B multiplies the error along direction v by (1 - 2 lr v'(X_B'X_B/|B|)v); that
    stays within [-1, 1] while lr <= 1 / lambda_max(X_B'X_B/|B|). We bound lambda_max by the trace,
    the batch's mean squared norm: exact for batch 1, where the limit is 1 / max_i ||x_i||^2.
    ``transform`` maps raw inputs to the ones SGD sees (the preconditioned x~).
    """
    # float32 norms, squared in float64: one fast pass over x (a float64 copy of a large x would
    # cost more than an epoch of training); the bound needs no more than float32's precision.
    norms = [
        torch.linalg.vector_norm(x if transform is None else transform(x), dim=1).cpu().double().square()
        for x, _ in batches
    ]
    sq_norms = torch.cat(norms) + (1.0 if bias else 0.0)  # the bias is a feature of value 1
    return 1.0 / largest_batch_mean(sq_norms, batch_size)


def stable_lr(x: torch.Tensor, bias: bool = False, batch_size: int = 1) -> float:
    """:func:`stable_lr_of` for in-memory inputs ``x``."""
    return stable_lr_of(tensor_batches(x, x[:, 0]), bias, batch_size)


def linear_fit_loss(batches: Batches, weights: list[float], bias: float | None) -> float | None:
    """Mean squared error of the linear model (weights, bias) on ``(x, y)`` batches; None without samples."""
    squared_error, count = 0.0, 0
    for x, y in batches:
        x, y = x.cpu().double(), y.reshape(len(x)).cpu().double()  # float64 on the host only
        squared_error += (x @ torch.tensor(weights, dtype=torch.float64) + (bias or 0.0) - y).square().sum().item()
        count += len(x)
    return squared_error / count if count else None
