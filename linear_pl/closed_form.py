"""What the training data alone says: the largest stable learning rate and the least-squares fit."""

import torch

# --lr auto trains at this fraction of the stability limit. At exactly half, SGD on the sample with
# the largest norm lands on that sample's solution in one step; over 10 data seeds of tutorial 1's
# data it converged in the fewest epochs of the fractions we tried (0.5, 0.7, 0.9 all work).
SAFETY_FACTOR = 0.5


# least_squares reads x this many rows at a time, so that its float64 copies stay small.
_CHUNK_ROWS = 65536


def _with_bias_column(x: torch.Tensor, bias: bool) -> torch.Tensor:
    # The bias acts as one more weight whose feature is always 1; float64 for exact sums.
    x = x.double()
    return torch.cat([x, torch.ones_like(x[:, :1])], dim=1) if bias else x


def stable_lr(x: torch.Tensor, bias: bool = False, batch_size: int = 1) -> float:
    """Largest learning rate at which SGD on mean squared error cannot diverge on these inputs.

    A step on batch B multiplies the error along direction v by (1 - 2 lr v'(X_B'X_B/|B|)v); that
    stays within [-1, 1] while lr <= 1 / lambda_max(X_B'X_B/|B|). We bound lambda_max by the trace,
    the batch's mean squared norm: exact for batch 1, where the limit is 1 / max_i ||x_i||^2.
    """
    # float32 norms, squared in float64: one fast pass over x (a float64 copy of a large x would
    # cost more than an epoch of training); the bound needs no more than float32's precision.
    sq_norms = torch.linalg.vector_norm(x, dim=1).double().square() + (1.0 if bias else 0.0)
    whole = len(sq_norms) // batch_size * batch_size
    batch_means = sq_norms[:whole].view(-1, batch_size).mean(dim=1)
    if whole < len(sq_norms):  # the last, shorter batch
        batch_means = torch.cat([batch_means, sq_norms[whole:].mean().view(1)])
    return 1.0 / batch_means.max().item()


def least_squares(x: torch.Tensor, y: torch.Tensor, bias: bool = False) -> tuple[list[float], float | None]:
    """The closed-form minimiser of the training MSE: the best any optimizer could reach."""
    # Through the normal equations, summed in float64 a chunk at a time: a [d, d] system whatever the
    # number of samples. The small solve runs on the host, where the "gelsd" driver gives the
    # minimum-norm solution when the data is rank-deficient (fewer distinct samples than features).
    gram, moment = 0.0, 0.0
    for xc, yc in zip(x.split(_CHUNK_ROWS), y.split(_CHUNK_ROWS)):
        a = _with_bias_column(xc, bias)
        gram, moment = gram + a.T @ a, moment + a.T @ yc.double()
    solution = torch.linalg.lstsq(gram.cpu(), moment.cpu().unsqueeze(1), driver="gelsd").solution[:, 0]
    weights = solution.tolist()
    return (weights[:-1], weights[-1]) if bias else (weights, None)


def linear_fit_loss(x: torch.Tensor, y: torch.Tensor, weights: list[float], bias: float | None) -> float | None:
    """Mean squared error of the linear model (weights, bias) on (x, y); None without samples."""
    if len(x) == 0:
        return None
    w = torch.tensor(weights, dtype=torch.float64, device=x.device)
    squared_error = sum(
        (xc.double() @ w + (bias or 0.0) - yc.double()).square().sum().item()
        for xc, yc in zip(x.split(_CHUNK_ROWS), y.split(_CHUNK_ROWS))
    )
    return squared_error / len(x)
