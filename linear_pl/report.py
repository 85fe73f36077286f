"""What a run tells its user: progress lines, weight trajectories in TensorBoard, the final table."""

import json
import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from linear_pl.checkpointing import RunCheckpoints
from linear_pl.closed_form import linear_fit_loss
from linear_pl.data_protocol import batch_size_of, moments_of, true_weights_of, validation_batches
from linear_pl.internals import PerEpochCallback

RESULT_KEYS = (
    "model", "target", "seed", "true_weights", "true_bias", "initial_weights", "initial_bias",
    "learned_weights", "learned_bias", "least_squares_weights", "least_squares_bias", "least_squares_val_loss",
    "max_abs_error", "final_train_loss", "final_val_loss", "best_val_loss", "best_epoch", "best_checkpoint",
    "epochs", "global_step", "lr", "fit_seconds", "accelerator", "world_size", "rank_weight_spread",
    "converged", "diverged", "stopped_because",
)  # fmt: skip


def _fmt_vector(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.4f}" for v in values) + "]"


def _scalar(value: torch.Tensor | None) -> float | None:
    return None if value is None else value.item()


class ProgressReport(PerEpochCallback):
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
            true_weights = true_weights_of(trainer.datamodule)
            if true_weights is not None and len(true_weights) == len(weight):  # a tutorial extra
                truth = torch.tensor(true_weights, device=weight.device)
                scalars["weights/distance_to_true"] = torch.linalg.vector_norm(weight - truth).item()
        # Straight to every logger: cheaper than self.log, and allowed after fit as well.
        for logger in trainer.loggers:
            logger.log_metrics(scalars, step=trainer.global_step)

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
    checkpoints: RunCheckpoints,
    metrics: dict[str, Any],
    fit_seconds: float,
    stopped_because: str,
    spread: float = 0.0,
    seed: int | None = None,
) -> dict[str, Any]:
    """Everything results.json holds, computed from the finished run and its final ``metrics``.

    Weights (learned, initial) only for models that have them, and errors against the truth only
    when the data knows it; losses for every model. The least-squares fit is the best any linear
    model can do on this data: the goal for LinearModel, the baseline to beat for a nonlinear one.
    """
    has_weights = model.weight is not None
    bias = model.bias is not None if has_weights else True
    learned_weights = model.weight.tolist() if has_weights else None
    learned_bias = _scalar(model.bias)
    true_weights = true_weights_of(datamodule)
    true_bias = getattr(datamodule, "true_bias", None)
    max_abs_error = None
    if has_weights and true_weights is not None:
        errors = [abs(a - b) for a, b in zip(learned_weights, true_weights)]
        if bias:
            errors.append(abs(learned_bias - (true_bias or 0.0)))
        max_abs_error = max(errors)
    ls_weights, ls_bias = moments_of(datamodule).least_squares(bias)
    ls_val_loss = linear_fit_loss(validation_batches(datamodule), ls_weights, ls_bias)
    best = checkpoints.best_path
    return {
        "model": type(model).__name__,
        "target": getattr(datamodule, "target", None),
        "seed": seed,
        "true_weights": true_weights,
        "true_bias": true_bias,
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
        "best_val_loss": checkpoints.best_score,
        "best_epoch": checkpoints.best_epoch,
        "best_checkpoint": None if best is None or not best.is_file() else str(best),  # only a file that exists
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "lr": float(model.lr),
        "fit_seconds": round(fit_seconds, 3),
        "accelerator": type(trainer.accelerator).__name__.removesuffix("Accelerator").lower(),
        "world_size": trainer.world_size,
        "rank_weight_spread": spread,
        "converged": stopped_because == "converged",
        "diverged": stopped_because == "diverged",
        "stopped_because": stopped_because,
    }


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
    learned, ls = results["learned_weights"], results["least_squares_weights"]
    names = list(names) if names and len(names) == len(learned) else [f"w{i}" for i in range(len(learned))]
    rows = list(zip(truth or learned, learned, ls))
    if results["learned_bias"] is not None:
        rows.append(((results["true_bias"] or 0.0), results["learned_bias"], results["least_squares_bias"]))
        names.append("bias")
    width = max(6, *(len(n) for n in names))
    if truth is not None:
        lines = [f"{'':>{width}} {'true':>12} {'learned':>12} {'least sq.':>12} {'|error|':>10}"]
        for name, (true, w, fit) in zip(names, rows):
            lines.append(f"{name:>{width}} {true:12.4f} {w:12.4f} {fit:12.4f} {abs(w - true):10.2e}")
    else:
        lines = [f"{'':>{width}} {'learned':>12} {'least sq.':>12} {'|difference|':>12}"]
        for name, (_, w, fit) in zip(names, rows):
            lines.append(f"{name:>{width}} {w:12.4f} {fit:12.4f} {abs(w - fit):12.2e}")
    lines.append(verdict(results, lr_was_auto=lr_was_auto, limit=limit))
    return "\n".join(lines)


def verdict(
    results: dict[str, Any], tolerance: float = 0.01, lr_was_auto: bool = False, limit: str | None = None
) -> str:
    """One line: were the weights recovered, or, without true weights, how the validation loss compares
    with the best linear fit's. ``limit`` names a debug flag that trained on part of the data only."""
    error, epochs = results["max_abs_error"], results["epochs"]
    if error is None:
        val = results["best_val_loss"] if results["best_val_loss"] is not None else results["final_val_loss"]
        linear = results["least_squares_val_loss"]
        if val is None or linear is None:  # no validation set: nothing to compare with the best linear fit
            return f"After {epochs} epochs: train_loss {results['final_train_loss']:.4g} (no validation set)."
        best = f" (epoch {results['best_epoch']})" if results["best_val_loss"] is not None else ""
        head = f"After {epochs} epochs ({results['stopped_because']}): best val_loss {val:.4g}{best}"
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


def write_results(results: dict[str, Any], run_dir: Path, trainer: L.Trainer, pl_module: L.LightningModule) -> Path:
    """Write ``run_dir``/results.json; give every logger the hyperparameters and the final metrics."""
    path = run_dir / "results.json"
    # Strict JSON: a diverged run's NaN or inf becomes null.
    clean = json.loads(json.dumps(results), parse_constant=lambda _: None)
    path.write_text(json.dumps(clean, indent=2) + "\n")
    finals = ("max_abs_error", "final_train_loss", "final_val_loss", "best_val_loss")
    metrics = {f"hp/{k}": results[k] for k in finals if results[k] is not None and math.isfinite(results[k])}
    params = {**trainer.datamodule.hparams, **pl_module.hparams}
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):  # its hparams view pairs them with the metrics
            logger.log_hyperparams(params, metrics)
        else:
            logger.log_hyperparams(params)
            logger.log_metrics(metrics, step=trainer.global_step)
        logger.save()
    return path


def report_run(
    trainer: L.Trainer,
    model: L.LightningModule,
    progress: ProgressReport,
    checkpoints: RunCheckpoints,
    run_dir: Path | None,
    fit_seconds: float,
    stopped_because: str,
    seed: int | None = None,
) -> dict[str, Any] | None:
    """After fit: the last progress line, the table and verdict, results.json; the results (on rank 0).

    Every DDP rank must call it (the weight spread and a final validation are collectives).
    """
    datamodule = trainer.datamodule
    spread = rank_weight_spread(trainer, model)
    # The final losses are read before validate() below, which resets the metrics.
    metrics = dict(trainer.callback_metrics)
    if stopped_because != "diverged" and progress.last_reported_epoch != trainer.current_epoch:
        # Stopped between report epochs: validate the final weights, so that the last line,
        # the loggers and results.json all describe them.
        trainer.validate(model, datamodule, verbose=False)
        metrics.update(trainer.callback_metrics)
        progress.report(trainer, model, trainer.current_epoch, metrics)
    if not trainer.is_global_zero:  # every rank holds the same weights; one report is enough
        return None
    results = summarize(
        trainer, model, datamodule, progress, checkpoints, metrics, fit_seconds, stopped_because, spread, seed
    )
    if stopped_because != "diverged":
        names = getattr(datamodule, "feature_names", None)
        lr_was_auto = model.hparams.get("lr") == "auto"
        limit = None if results["learned_weights"] is None else batch_limit(trainer, _num_weights(results))
        print(format_table(results, names, lr_was_auto=lr_was_auto, limit=limit))
    if run_dir is not None:
        write_results(results, run_dir, trainer, model)
    return results
