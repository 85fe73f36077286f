"""What the training data alone says: the largest stable learning rate and the least-squares fit."""

import torch

# --lr auto trains at this fraction of the stability limit. At exactly half, SGD on the sample with
# the largest norm lands on that sample's solution in one step; over 10 data seeds of tutorial 1's
# data it converged in the fewest epochs of the fractions we tried (0.5, 0.7, 0.9 all work).
SAFETY_FACTOR = 0.5


def _with_bias_column(x: torch.Tensor, bias: bool) -> torch.Tensor:
    # The bias acts as one more weight whose feature is always 1.
    return torch.cat([x, torch.ones_like(x[:, :1])], dim=1) if bias else x


def stable_lr(x: torch.Tensor, bias: bool = False, batch_size: int = 1) -> float:
    """Largest learning rate at which SGD on mean squared error cannot diverge on these inputs.

    A step on batch B multiplies the error along direction v by (1 - 2 lr v'(X_B'X_B/|B|)v); that
    stays within [-1, 1] while lr <= 1 / lambda_max(X_B'X_B/|B|). We bound lambda_max by the trace,
    the batch's mean squared norm: exact for batch 1, where the limit is 1 / max_i ||x_i||^2.
    """
    sq_norms = _with_bias_column(x.double(), bias).square().sum(dim=1)
    whole = len(sq_norms) // batch_size * batch_size
    batch_means = sq_norms[:whole].view(-1, batch_size).mean(dim=1)
    if whole < len(sq_norms):  # the last, shorter batch
        batch_means = torch.cat([batch_means, sq_norms[whole:].mean().view(1)])
    return 1.0 / batch_means.max().item()


def least_squares(x: torch.Tensor, y: torch.Tensor, bias: bool = False) -> tuple[list[float], float | None]:
    """The closed-form minimiser of the training MSE: the best any optimizer could reach."""
    # On the host: the report needs it once, and only the CPU driver "gelsd" copes with
    # rank-deficient data (fewer distinct samples than features).
    a = _with_bias_column(x.double(), bias)
    solution = torch.linalg.lstsq(a.cpu(), y.double().cpu().unsqueeze(1), driver="gelsd").solution[:, 0]
    weights = solution.tolist()
    return (weights[:-1], weights[-1]) if bias else (weights, None)
