"""What a finished run says: the final validation, the verdict, results.json, the test set, the loggers' hparams."""

import json
import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.model_helpers import is_overridden

from linear_pl.runner.errors import RunFilesError
from linear_pl.runner.extras import extras_of
from linear_pl.runner.monitor import TRAIN_LOSS, serves_batches
from linear_pl.runner.progress import ProgressReport
from linear_pl.runner.run_checkpoints import RunCheckpoints

# The final values each logger's hyperparameters are paired with (TensorBoard's HPARAMS tab), where present.
HP_METRICS = ("best_value", "best_val_loss", "final_train_loss", "final_val_loss")


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


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in sorted(metrics.items()) if not torch.is_tensor(v) or v.numel() == 1}


def summarize(
    trainer: L.Trainer,
    model: L.LightningModule,
    checkpoints: RunCheckpoints,
    metrics: dict[str, Any],
    fit_seconds: float,
    stopped_because: str,
    spread: float = 0.0,
    seed: int | None = None,
) -> dict[str, Any]:
    """The run's results for any model, from the finished run and its final ``metrics``."""
    monitor = checkpoints.monitor
    best = checkpoints.best_path
    last = checkpoints.dirpath / "last.ckpt"
    group = trainer.optimizers[0].param_groups[0] if trainer.optimizers else {}
    scalars = _scalars(metrics)
    results = {
        "model": type(model).__name__,
        "seed": seed,
        "monitor": monitor.name,
        "mode": monitor.mode,
        "best_value": checkpoints.best_score,
        "best_epoch": checkpoints.best_epoch,
        "best_step": checkpoints.best_step,
        "best_checkpoint": None if best is None or not best.is_file() else str(best),  # only files that exist
        "last_checkpoint": str(last) if last.is_file() else None,
        "stopped_because": stopped_because,
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "lr": group.get("initial_lr", group.get("lr")),
        "fit_seconds": round(fit_seconds, 3),
        "accelerator": type(trainer.accelerator).__name__.removesuffix("Accelerator").lower(),
        "world_size": trainer.world_size,
        "rank_weight_spread": spread,
        "diverged": stopped_because == "diverged",
        "final_train_loss": scalars.get(monitor.train_loss or TRAIN_LOSS),
        "train_loss_metric": monitor.train_loss,  # the name the training loss was found under
        "final_val_loss": scalars.get("val/loss"),
        "metrics": scalars,  # the last value of every epoch metric
    }
    if monitor.name == "val/loss":
        results["best_val_loss"] = checkpoints.best_score
    return results


def verdict(results: dict[str, Any]) -> str:
    """One line: how the run ended, and the best value of what it watched (counted in steps for a run
    that max_steps stopped)."""
    by_steps = results["stopped_because"] == "max_steps"
    done = f"{results['global_step']} steps" if by_steps else f"{results['epochs']} epochs"
    head = f"After {done} ({results['stopped_because']})"
    if results["best_value"] is None:
        return f"{head}: no {results['monitor']} was recorded."
    when = f"step {results['best_step']}" if by_steps else f"epoch {results['best_epoch']}"
    return f"{head}: best {results['monitor']} {results['best_value']:.4g} ({when})."


def has_test_data(trainer: L.Trainer) -> bool:
    """Whether the data module has a test set (a test_dataloader of its own, with at least one batch) and the
    model a test_step to run on it."""
    model = trainer.lightning_module
    return is_overridden("test_step", model) and serves_batches(trainer.datamodule, "test_dataloader")


def run_test_set(trainer: L.Trainer, model: L.LightningModule, best: Path | None) -> dict[str, float]:
    """Test the best checkpoint's weights (else the final ones) on the data module's test set, once.

    Every DDP rank must call it. The weights alone are loaded, with torch's safe loader: Lightning's
    own ``ckpt_path`` would also restore every callback's state, the run's best value among them.
    """
    trainer.strategy.barrier()  # rank 0 wrote best.ckpt
    if best is not None:
        checkpoint = torch.load(best, map_location=model.device, weights_only=True)
        model.load_state_dict(checkpoint["state_dict"])
    (metrics,) = trainer.test(model, trainer.datamodule, verbose=False)
    return _scalars(metrics)


def write_results(results: dict[str, Any], run_dir: Path, trainer: L.Trainer, pl_module: L.LightningModule) -> Path:
    """Write ``run_dir``/results.json; give every logger the hyperparameters and the final metrics."""
    path = run_dir / "results.json"
    # Strict JSON: a diverged run's NaN or inf becomes null.
    clean = json.loads(json.dumps(results), parse_constant=lambda _: None)
    try:
        path.write_text(json.dumps(clean, indent=2) + "\n")
    except OSError as error:
        raise RunFilesError.of(error) from error
    keys = [*HP_METRICS, *(key for extra in extras_of(trainer) for key in extra.hp_metrics)]
    metrics = {f"hp/{k}": results[k] for k in keys if isinstance(results.get(k), float) and math.isfinite(results[k])}
    params = {**(trainer.datamodule.hparams if trainer.datamodule is not None else {}), **pl_module.hparams}
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
    """After fit: the final validation, the last progress line, the verdict, the test set, results.json.

    Every DDP rank must call it (the weight spread, the final validation and the test are collectives).
    Returns the results on rank 0.
    """
    spread = rank_weight_spread(trainer, model)
    # The final losses are read before validate() below, which resets the metrics.
    metrics = dict(trainer.callback_metrics)
    between_reports = stopped_because != "diverged" and progress.last_reported_epoch != trainer.current_epoch
    # A limit (max_steps, max_time) can end the fit within an epoch, even before its first validation.
    unchecked = stopped_because not in ("diverged", "interrupted") and checkpoints.checked_step != trainer.global_step
    if between_reports or unchecked:
        # Stopped before the final weights were validated: validate them (or, without validation data,
        # check their training loss), so that the last line, best.ckpt, the loggers and results.json all
        # describe them.
        if checkpoints.monitor.on_training:
            checkpoints.check_best(trainer, model)
        else:
            trainer.validate(model, trainer.datamodule, verbose=False)
            metrics.update(trainer.callback_metrics)
        progress.report(trainer, model, trainer.current_epoch, metrics)
    checkpoints.finish(trainer)  # every checkpoint on disk before results.json names them
    results = None
    if trainer.is_global_zero:
        results = summarize(trainer, model, checkpoints, metrics, fit_seconds, stopped_because, spread, seed)
        said = [text for extra in extras_of(trainer) if (text := extra.summarize(trainer, model, results))]
        if stopped_because != "diverged":
            print("\n".join(said) if said else verdict(results), flush=True)
    if stopped_because not in ("diverged", "interrupted") and has_test_data(trainer):
        test = run_test_set(trainer, model, checkpoints.best_path)
        if results is not None:
            results["test"] = test
            which = "best.ckpt" if checkpoints.best_path else "the final weights"
            shown = "  ".join(f"{k.replace('/', '_')} {v:.4f}" for k, v in test.items())
            print(f"Test ({which}): {shown}", flush=True)
    if results is not None and run_dir is not None:
        write_results(results, run_dir, trainer, model)
    return results
