"""What a run tells its user: progress lines, weight trajectories in TensorBoard, the final table."""

import json
import math
from pathlib import Path
from typing import Any

import lightning as L
import torch

from linear_pl.closed_form import least_squares, linear_fit_loss

RESULT_KEYS = (
    "model", "target", "true_weights", "true_bias", "initial_weights", "initial_bias",
    "learned_weights", "learned_bias", "least_squares_weights", "least_squares_bias", "least_squares_val_loss",
    "max_abs_error", "final_train_loss", "final_val_loss", "epochs", "global_step", "lr", "fit_seconds",
    "accelerator", "world_size", "rank_weight_spread", "converged", "diverged",
)  # fmt: skip


def _fmt_vector(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.4f}" for v in values) + "]"


def _scalar(value: torch.Tensor | None) -> float | None:
    return None if value is None else value.item()


class ProgressReport(L.Callback):
    """Every ``log_every_n_epochs`` epochs: one line on stdout; the training loss, learning rate and
    each weight's value in TensorBoard.

    Plain lines, not a progress bar, so the output reads the same in a terminal and in a CI log.
    The initial weights are part of the callback's state, so a resumed run still knows them.
    """

    def __init__(self, log_every_n_epochs: int = 10) -> None:
        self.log_every_n_epochs = log_every_n_epochs
        self.initial_weights: list[float] | None = None
        self.initial_bias: float | None = None
        self.last_reported_epoch = 0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if pl_module.weight is None:
            return  # a model without named weights (the MLP): the losses tell its progress
        if self.initial_weights is None:
            self.initial_weights = pl_module.weight.tolist()
            self.initial_bias = _scalar(pl_module.bias)
        if trainer.is_global_zero:
            bias = "" if self.initial_bias is None else f"  bias {self.initial_bias:.4f}"
            print(f"Initial weights: {_fmt_vector(self.initial_weights)}{bias}", flush=True)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if epoch % self.log_every_n_epochs == 0:
            self.report(trainer, pl_module, epoch)

    def report(self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int, metrics: dict | None = None) -> None:
        """Log the loss and weights to TensorBoard and print one line, after ``epoch`` epochs (1-based).

        ``metrics`` holds the losses to print; by default the trainer's latest ``callback_metrics``.
        """
        losses = trainer.callback_metrics if metrics is None else metrics
        self.last_reported_epoch = epoch
        if not trainer.is_global_zero:
            return  # the weights are identical on every DDP rank, and one line is enough
        scalars = {"train/lr": trainer.optimizers[0].param_groups[0]["lr"]}
        if "train/loss" in losses:
            scalars["train/loss"] = float(losses["train/loss"])
        if pl_module.weight is not None:
            weight = pl_module.weight.detach()
            scalars.update({f"weights/w{i}": w for i, w in enumerate(weight.tolist())})
            if pl_module.bias is not None:
                scalars["weights/bias"] = pl_module.bias.item()
            true_weights = getattr(trainer.datamodule, "true_weights", None)
            if true_weights is not None and len(true_weights) == len(weight):
                truth = torch.tensor(true_weights, device=weight.device)
                scalars["weights/distance_to_true"] = torch.linalg.vector_norm(weight - truth).item()
        # Straight to the logger: cheaper than self.log, and allowed after fit as well.
        if trainer.logger is not None:
            trainer.logger.log_metrics(scalars, step=trainer.global_step)

        line = f"Epoch [{epoch}/{trainer.max_epochs}]"
        for key in ("train/loss", "val/loss"):
            if key in losses:
                line += f"  {key.replace('/', '_')} {float(losses[key]):.4f}"
        print(line, flush=True)

    def state_dict(self) -> dict[str, Any]:
        return {"initial_weights": self.initial_weights, "initial_bias": self.initial_bias}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.initial_weights = state_dict["initial_weights"]
        self.initial_bias = state_dict["initial_bias"]


def rank_weight_spread(trainer: L.Trainer, model: L.LightningModule) -> float:
    """The largest difference of any parameter between DDP ranks (0.0 for one process).

    A collective: every rank must call it. DDP keeps the replicas identical by construction; this
    checks it rather than trusting it, and results.json records the answer.
    """
    if trainer.world_size == 1:
        return 0.0
    params = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = trainer.strategy.all_gather(params)  # [world_size, num_params]
    return (gathered.amax(dim=0) - gathered.amin(dim=0)).max().item()


def summarize(
    trainer: L.Trainer,
    model: L.LightningModule,
    datamodule: L.LightningDataModule,
    progress: ProgressReport,
    metrics: dict[str, Any],
    fit_seconds: float,
    converged: bool,
    diverged: bool,
    spread: float = 0.0,
) -> dict[str, Any]:
    """Everything results.json holds, computed from the finished run and its final ``metrics``.

    Weights (learned, initial, errors) only for models that have them; losses for every model. The
    least-squares fit is the best any linear model can do on this data: the goal for LinearModel, the
    baseline to beat for a nonlinear one.
    """
    has_weights = model.weight is not None
    bias = model.bias is not None if has_weights else True
    learned_weights = model.weight.tolist() if has_weights else None
    learned_bias = _scalar(model.bias)
    max_abs_error = None
    if has_weights:
        errors = [abs(a - b) for a, b in zip(learned_weights, datamodule.true_weights)]
        if bias:
            errors.append(abs(learned_bias - (datamodule.true_bias or 0.0)))
        max_abs_error = max(errors)
    ls_weights, ls_bias = least_squares(datamodule.train_x, datamodule.train_y, bias)
    ls_val_loss = linear_fit_loss(datamodule.val_x, datamodule.val_y, ls_weights, ls_bias)
    return {
        "model": type(model).__name__,
        "target": getattr(datamodule, "target", None),
        "true_weights": datamodule.true_weights,
        "true_bias": datamodule.true_bias,
        "initial_weights": progress.initial_weights,
        "initial_bias": progress.initial_bias,
        "learned_weights": learned_weights,
        "learned_bias": learned_bias,
        "least_squares_weights": ls_weights,
        "least_squares_bias": ls_bias,
        "least_squares_val_loss": ls_val_loss,
        "max_abs_error": max_abs_error,
        "final_train_loss": _scalar(metrics.get("train/loss")),
        "final_val_loss": _scalar(metrics.get("val/loss")),
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "lr": float(model.lr),
        "fit_seconds": round(fit_seconds, 3),
        "accelerator": type(trainer.accelerator).__name__.removesuffix("Accelerator").lower(),
        "world_size": trainer.world_size,
        "rank_weight_spread": spread,
        "converged": converged,
        "diverged": diverged,
    }


def format_table(results: dict[str, Any]) -> str:
    """The final table (index, true, learned, least squares, |learned - true|) and a one-line verdict."""
    if results["learned_weights"] is None:
        return verdict(results)
    rows = list(zip(results["true_weights"], results["learned_weights"], results["least_squares_weights"]))
    names = [f"w{i}" for i in range(len(rows))]
    if results["learned_bias"] is not None:
        rows.append(((results["true_bias"] or 0.0), results["learned_bias"], results["least_squares_bias"]))
        names.append("bias")
    lines = [f"{'':>6} {'true':>12} {'learned':>12} {'least sq.':>12} {'|error|':>10}"]
    for name, (true, learned, ls) in zip(names, rows):
        lines.append(f"{name:>6} {true:12.4f} {learned:12.4f} {ls:12.4f} {abs(learned - true):10.2e}")
    lines.append(verdict(results))
    return "\n".join(lines)


def verdict(results: dict[str, Any], tolerance: float = 0.01) -> str:
    """One line: were the weights recovered (or, for a model without weights, how low is the loss)."""
    error, epochs = results["max_abs_error"], results["epochs"]
    if error is None:
        val, linear = results["final_val_loss"], results["least_squares_val_loss"]
        if val is None:  # --num_val_samples 0: nothing to compare with the best linear fit
            return f"After {epochs} epochs: train_loss {results['final_train_loss']:.4g} (no validation set)."
        line = f"After {epochs} epochs: val_loss {val:.4g}; the best linear fit reaches {linear:.4g}"
        return line + (f" ({linear / val:.3g}x higher)." if 0 < val < linear else ".")
    if not math.isfinite(error):
        return f"Diverged: the weights are not finite after {epochs} epochs (lr {results['lr']:.3g})."
    if error <= tolerance:
        how = "converged" if results["converged"] else "stopped at --max_epochs"
        return f"Recovered every weight to within {error:.2e} in {epochs} epochs ({how})."
    return (
        f"Not recovered: max |learned - true| is {error:.3g} after {epochs} epochs "
        f"(lr {results['lr']:.3g}); try more epochs or --lr auto."
    )


def write_results(results: dict[str, Any], run_dir: Path, trainer: L.Trainer, pl_module: L.LightningModule) -> Path:
    """Write ``run_dir``/results.json; give the TensorBoard hparams their real metrics."""
    path = run_dir / "results.json"
    # Strict JSON: a diverged run's NaN or inf becomes null.
    clean = json.loads(json.dumps(results), parse_constant=lambda _: None)
    path.write_text(json.dumps(clean, indent=2) + "\n")
    if trainer.logger is not None:
        finals = ("max_abs_error", "final_train_loss", "final_val_loss")
        finite = [key for key in finals if results[key] is not None and math.isfinite(results[key])]
        metrics = {f"hp/{key}": results[key] for key in finite}
        trainer.logger.log_hyperparams({**trainer.datamodule.hparams, **pl_module.hparams}, metrics)
        trainer.logger.save()
    return path
