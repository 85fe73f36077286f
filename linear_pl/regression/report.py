"""The regression example's report: the initial weights, their trajectories, the final table and verdict.

:class:`WeightsReport` is a :class:`~linear_pl.runner.extras.RunExtra`: ``RegressionModel`` brings it
through ``configure_callbacks()``. It adds the weights, the truth where the data knows it, and the
least-squares fit (the best any linear model can do on the data) to the run's results.
"""

import math
from typing import Any

import lightning as L
import torch

from linear_pl.regression.closed_form import linear_fit_loss
from linear_pl.regression.data_protocol import batch_size_of, moments_of, true_weights_of, validation_batches
from linear_pl.runner.extras import RunExtra
from linear_pl.runner.results import verdict as run_verdict


def _fmt_vector(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.4f}" for v in values) + "]"


def _scalar(value: torch.Tensor | None) -> float | None:
    return None if value is None else value.item()


class WeightsReport(RunExtra):
    """The weights before, during and after training, beside the truth and the least-squares fit.

    The initial weights are part of the callback's state, so a resumed run still knows them. A model
    without named weights (the MLP) gets the least-squares comparison of its validation loss only.
    """

    hp_metrics = ("max_abs_error",)

    def __init__(self) -> None:
        self.initial_weights: list[float] | None = None
        self.initial_bias: float | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if pl_module.weight is None:
            return  # the losses tell its progress
        if self.initial_weights is None:
            self.initial_weights = pl_module.weight.tolist()
            self.initial_bias = _scalar(pl_module.bias)
        if trainer.is_global_zero:
            bias = "" if self.initial_bias is None else f"  bias {self.initial_bias:.4f}"
            print(f"Initial weights: {_fmt_vector(self.initial_weights)}{bias}", flush=True)

    def state_dict(self) -> dict[str, Any]:
        return {"initial_weights": self.initial_weights, "initial_bias": self.initial_bias}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.initial_weights = state_dict["initial_weights"]
        self.initial_bias = state_dict["initial_bias"]

    def scalars(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        if pl_module.weight is None:
            return {}
        weight = pl_module.weight.detach()
        scalars = {f"weights/w{i}": w for i, w in enumerate(weight.tolist())}
        if pl_module.bias is not None:
            scalars["weights/bias"] = pl_module.bias.item()
        true_weights = true_weights_of(trainer.datamodule)
        if true_weights is not None and len(true_weights) == len(weight):  # a tutorial extra
            truth = torch.tensor(true_weights, device=weight.device)
            scalars["weights/distance_to_true"] = torch.linalg.vector_norm(weight - truth).item()
        return scalars

    def summarize(self, trainer: L.Trainer, pl_module: L.LightningModule, results: dict[str, Any]) -> str | None:
        datamodule = trainer.datamodule
        has_weights = pl_module.weight is not None
        bias = pl_module.bias is not None if has_weights else True
        learned_weights = pl_module.weight.tolist() if has_weights else None
        learned_bias = _scalar(pl_module.bias)
        true_weights = true_weights_of(datamodule)
        true_bias = getattr(datamodule, "true_bias", None)
        max_abs_error = None
        if has_weights and true_weights is not None:
            errors = [abs(a - b) for a, b in zip(learned_weights, true_weights)]
            if bias:
                errors.append(abs(learned_bias - (true_bias or 0.0)))
            max_abs_error = max(errors)
        ls_weights, ls_bias, ls_val_loss = None, None, None
        if pl_module.computes_baseline:  # skipped where it would cost more than a tenth of the run
            ls_weights, ls_bias = moments_of(datamodule).least_squares(bias)
            ls_val_loss = linear_fit_loss(validation_batches(datamodule), ls_weights, ls_bias)
        results.update(
            target=getattr(datamodule, "target", None),
            true_weights=true_weights,
            true_bias=true_bias,
            initial_weights=self.initial_weights,
            initial_bias=self.initial_bias,
            learned_weights=learned_weights,
            learned_bias=learned_bias,
            least_squares_weights=ls_weights,
            least_squares_bias=ls_bias,
            least_squares_val_loss=ls_val_loss,
            max_abs_error=max_abs_error,
            converged=results["stopped_because"] == "converged",
        )
        if results["diverged"]:
            return None
        names = getattr(datamodule, "feature_names", None)
        lr_was_auto = pl_module.hparams.get("lr") == "auto"
        limit = None if learned_weights is None else batch_limit(trainer, _num_weights(results))
        return format_table(results, names, lr_was_auto=lr_was_auto, limit=limit)


def format_table(
    results: dict[str, Any], names: list[str] | None = None, lr_was_auto: bool = False, limit: str | None = None
) -> str:
    """The final table and a one-line verdict.

    With true weights: index, true, learned, least squares, |learned - true|. Without: learned,
    least squares and their difference, rows named by ``names`` (the data's feature names) if given.
    """
    if results["learned_weights"] is None:
        return verdict(results, lr_was_auto=lr_was_auto, limit=limit)
    truth = results["true_weights"]
    learned, ls = (
        results["learned_weights"],
        results["least_squares_weights"] or [None] * len(results["learned_weights"]),
    )
    names = list(names) if names and len(names) == len(learned) else [f"w{i}" for i in range(len(learned))]
    rows = list(zip(truth or learned, learned, ls))
    if results["learned_bias"] is not None:
        rows.append(((results["true_bias"] or 0.0), results["learned_bias"], results["least_squares_bias"]))
        names.append("bias")
    width = max(6, *(len(n) for n in names))
    if truth is not None:
        lines = [f"{'':>{width}} {'true':>12} {'learned':>12} {'least sq.':>12} {'|error|':>10}"]
        for name, (true, w, fit) in zip(names, rows):
            lines.append(f"{name:>{width}} {true:12.4f} {w:12.4f} {_cell(fit)} {abs(w - true):10.2e}")
    else:
        lines = [f"{'':>{width}} {'learned':>12} {'least sq.':>12} {'|difference|':>12}"]
        for name, (_, w, fit) in zip(names, rows):
            difference = f"{'-':>12}" if fit is None else f"{abs(w - fit):12.2e}"
            lines.append(f"{name:>{width}} {w:12.4f} {_cell(fit)} {difference}")
    lines.append(verdict(results, lr_was_auto=lr_was_auto, limit=limit))
    return "\n".join(lines)


def _cell(value: float | None) -> str:
    """A least-squares cell: empty (a dash) where the baseline was skipped."""
    return f"{'-':>12}" if value is None else f"{value:12.4f}"


def verdict(
    results: dict[str, Any], tolerance: float = 0.01, lr_was_auto: bool = False, limit: str | None = None
) -> str:
    """One line: were the weights recovered, or, without true weights, how the validation loss compares
    with the best linear fit's. ``limit`` names a debug flag that trained on part of the data only."""
    error, epochs = results["max_abs_error"], results["epochs"]
    if error is None:
        best = results.get("best_val_loss")  # where the run watched val/loss
        val = best if best is not None else results["final_val_loss"]
        linear = results["least_squares_val_loss"]
        if val is None or linear is None:  # no validation set: nothing to compare with the best linear fit
            return run_verdict(results)
        which = (
            f"best val_loss {val:.4g} (epoch {results['best_epoch']})" if best is not None else f"val_loss {val:.4g}"
        )
        head = f"After {epochs} epochs ({results['stopped_because']}): {which}"
        if linear <= 1e-9 * max(val, 1.0):  # float rounding: the data is exactly linear
            return f"{head}; the least-squares fit's is {linear:.3g}: a linear model fits this data exactly."
        return f"{head}, {val / linear:.3f}x the least-squares fit's {linear:.4g}."
    if not math.isfinite(error):
        return f"Diverged: the weights are not finite after {epochs} epochs (lr {results['lr']:.3g})."
    if error <= tolerance:
        how = "converged" if results["converged"] else f"stopped: {results['stopped_because']}"
        return f"Recovered every weight to within {error:.2e} in {epochs} epochs ({how})."
    head = f"Not recovered: max |learned - true| is {error:.3g} after {epochs} epochs (lr {results['lr']:.3g})"
    return f"{head}; {_advice(results, lr_was_auto, limit)}."


def _advice(results: dict[str, Any], lr_was_auto: bool, limit: str | None) -> str:
    """What would help, from why the run stopped: only advice that follows from what was measured."""
    if limit is not None:  # more epochs or another lr cannot make up for data never trained on
        return limit
    lr = "" if lr_was_auto else " or --lr auto"
    return {
        "converged": "the training loss reached its floor, so the training data does not determine the weights",
        "val_plateau": f"the validation loss stopped improving for --patience validations; try a larger --patience{lr}",
        "max_time": f"the time limit (--trainer.max_time) ended it; allow more time{lr}",
        "interrupted": "it was interrupted; continue it with --ckpt_path last",
    }.get(results["stopped_because"], f"try more epochs{lr}")


def batch_limit(trainer: L.Trainer, num_weights: int) -> str | None:
    """Why the weights cannot be recovered when a debug flag trained on only some batches each epoch."""
    if trainer.overfit_batches:
        flag = f"--trainer.overfit_batches {trainer.overfit_batches}"
    elif trainer.limit_train_batches != 1.0:
        flag = f"--trainer.limit_train_batches {trainer.limit_train_batches}"
    else:
        return None
    batches = trainer.num_training_batches
    seen = batches * batch_size_of(trainer.datamodule) * trainer.world_size
    if seen < num_weights:
        return f"{flag} trained on {seen} samples an epoch, too few to determine {num_weights} weights; drop it"
    return f"{flag} trained on {batches} batches an epoch, not all the data; drop it"


def _num_weights(results: dict[str, Any]) -> int:
    return len(results["learned_weights"]) + (results["learned_bias"] is not None)
