"""The flags every run has, beside LightningCLI's own: the everyday Trainer flags, the seed, what best.ckpt
and early stopping follow, checkpoints, presets, and the arguments of the chosen classes as flat flags; and
the checks of the Trainer's flags that fail in one line before anything starts."""

from typing import Literal

from jsonargparse import Namespace
from lightning.pytorch.accelerators import AcceleratorRegistry
from lightning.pytorch.cli import LightningArgumentParser, LRSchedulerTypeTuple
from torch.optim import Optimizer

from linear_pl.runner.errors import UsageError
from linear_pl.runner.flags import TRAINER_FLAGS, add_flat_flags, init_parameters, preset_action, registered_arguments
from linear_pl.runner.project import Project, class_path
from linear_pl.runner.sizing import num_features_of


def add_run_flags(
    parser: LightningArgumentParser, project: Project, classes: dict[str, type | None], hparams: dict
) -> tuple[dict[str, str], dict[str, str]]:
    """Add the run's flags to a subcommand's parser; returns the flat flags of the classes, by group, and the
    arguments a run flag shadows, with their nested flags (flags.add_flat_flags).

    ``hparams``: the checkpoint's hyperparameters, where there is one.
    """
    for group, cls in classes.items():  # the chosen class starts from its own defaults, not another's
        if cls is not None:
            parser.set_defaults({group: {"class_path": class_path(cls)}})
    for name in TRAINER_FLAGS:  # the flat flag's default must equal the nested one, or it would overwrite it
        parser.add_argument(f"--{name}", dest=f"trainer.{name}", default=parser.get_default(f"trainer.{name}"))
    add = parser.add_argument
    add("--seed", dest="seed_everything", type=int, default=0, help="the run's one seed: data, weights, order")
    add("--log_every_n_epochs", type=int, default=project.log_every_n_epochs, help="print, validate every N epochs")
    add("--monitor", type=str, default="val/loss", help="the metric best.ckpt and early stopping follow")
    add("--mode", type=Literal["min", "max"], default="min", help="whether lower or higher is better")
    add("--patience", type=int | None, default=10, help="stop after N validations without a better value (null: never)")
    add("--min_delta", type=float, default=0.0, help="the smallest improvement of the monitored value that counts")
    add("--checkpoint_every_seconds", type=float, default=5.0, help="refresh last.ckpt at most this often")
    add(
        "--compile", type=bool, nargs="?", const=True, default=False, help="compile the model's forward (torch.compile)"
    )
    presets = ", ".join(project.preset_names()) or "none here"
    add("--preset", action=preset_action(project), help=f"a shipped config: {presets}")
    # A model that takes num_features sizes itself from the data (a checkpoint's model keeps the width it was
    # trained with: LightningCLI passes on its hyperparameters); the run's one seed also seeds the data.
    linked = set()
    if "num_features" in init_parameters(classes["model"]) and "num_features" not in hparams:
        parser.link_arguments(
            "data", "model.init_args.num_features", compute_fn=num_features_of, apply_on="instantiate"
        )
        linked.add("model.init_args.num_features")
    if classes["data"] is not None and "seed" in init_parameters(classes["data"]):
        parser.link_arguments("seed_everything", "data.init_args.seed")
        linked.add("data.init_args.seed")
    parser.link_arguments("log_every_n_epochs", "trainer.check_val_every_n_epoch")
    # LightningCLI's --optimizer and --lr_scheduler, as it adds them, but first: a model argument of either
    # name then shares the flag (see flags.add_flat_flags).
    parser.add_optimizer_args((Optimizer,))
    parser.add_lr_scheduler_args(LRSchedulerTypeTuple)
    return add_flat_flags(parser, classes, linked, registered_arguments(project))


def add_rows_flags(parser: LightningArgumentParser) -> None:
    """Rows of inputs, for ``predict`` and ``export``."""
    parser.add_argument("--x", type=str | None, default=None, help='rows: "[1, 1, 1]" or "[[1, 1, 1], [2, 0, 1]]"')
    parser.add_argument("--input", type=str | None, default=None, help="a CSV file of rows, or - for stdin")


def add_predict_flags(parser: LightningArgumentParser) -> None:
    """``predict``'s rows and output."""
    add_rows_flags(parser)
    parser.add_argument("--output", type=str | None, default=None, help="also write the predictions to this file")


def add_export_flags(parser: LightningArgumentParser) -> None:
    """``export``'s rows (in place of its data's) and the tolerance each format must meet."""
    add_rows_flags(parser)
    # Lightning's own to_onnx test compares ONNX Runtime with eager at these.
    parser.add_argument("--rtol", type=float, default=1e-3, help="relative tolerance of each format against eager")
    parser.add_argument("--atol", type=float, default=1e-5, help="absolute tolerance of each format against eager")


def add_serve_flags(parser: LightningArgumentParser) -> None:
    """``serve``'s model, address, batching and request limits (linear_pl/runner/serve.py)."""
    add = parser.add_argument
    add("--format", type=Literal["eager", "pt2", "onnx"], default="eager", help="the checkpoint's model, or its export")
    add("--host", type=str, default="127.0.0.1", help="127.0.0.1 (this machine only), 0.0.0.0 or ::")
    add("--port", type=int, default=8000, help="the port the server listens on")
    add("--max_batch_size", type=int, default=16, help="requests predicted together at most (1: no batching)")
    add("--batch_timeout", type=float, default=0.005, help="seconds a batch waits to fill")
    add("--max_request_mb", type=float, default=16.0, help="a larger request body is refused (413)")
    add("--decode", type=str | None, default=None, help="MODULE.FUNCTION(body, content_type): a request's inputs")


def check_accelerator(name: object) -> None:
    """Fail in one line, before anything starts, when the accelerator is unknown or absent here."""
    registry = AcceleratorRegistry.available_accelerators()
    known = ["auto", "cpu", "gpu", *sorted(set(registry) - {"cpu"})]
    if isinstance(name, str) and name not in known:
        raise UsageError(f"--accelerator {name}: unknown; choose one of {', '.join(known)}")
    available = {n: AcceleratorRegistry[n]["accelerator"].is_available() for n in sorted(registry)}
    have = ", ".join(n for n, ok in available.items() if ok)
    if name == "gpu" and not (available.get("cuda") or available.get("mps")):
        raise UsageError(f"--accelerator gpu: no GPU is available on this machine (available: {have})")
    if name in available and not available[name]:
        raise UsageError(f"--accelerator {name}: not available on this machine (available: {have})")


def check_trainer_flags(trainer: Namespace) -> None:
    """Fail in one line, before anything starts, on Trainer flags that cannot work here."""
    check_accelerator(trainer.accelerator)
    if trainer.max_epochs is not None and trainer.max_epochs < 1:
        raise UsageError(f"--max_epochs {trainer.max_epochs}: must be >= 1")
    # Lightning takes these when the Trainer is built and divides by them once training starts.
    accumulate = trainer.get("accumulate_grad_batches")
    if isinstance(accumulate, int) and accumulate < 1:
        raise UsageError(f"--trainer.accumulate_grad_batches {accumulate}: must be >= 1")
    interval = trainer.get("val_check_interval")
    if isinstance(interval, int | float) and interval <= 0:
        raise UsageError(
            f"--trainer.val_check_interval {interval}: must be > 0 (no validation: --trainer.limit_val_batches 0)"
        )
