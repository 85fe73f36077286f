"""The flags every run has, beside LightningCLI's own: the everyday Trainer flags, the seed, what best.ckpt
and early stopping follow, checkpoints, presets, and the arguments of the chosen classes as flat flags."""

from typing import Literal

from lightning.pytorch.cli import LightningArgumentParser, LRSchedulerTypeTuple
from torch.optim import Optimizer

from linear_pl.runner.errors import TRAINER_FLAGS
from linear_pl.runner.flags import add_flat_flags, init_parameters, preset_action, registered_arguments
from linear_pl.runner.profile import Profile
from linear_pl.runner.sizing import num_features_of


def add_run_flags(
    parser: LightningArgumentParser, profile: Profile, classes: dict[str, type | None], hparams: dict
) -> tuple[dict[str, str], dict[str, str]]:
    """Add the run's flags to a subcommand's parser; returns the flat flags of the classes, by group, and the
    arguments a run flag shadows, with their nested flags (flags.add_flat_flags).

    ``hparams``: the checkpoint's hyperparameters, where there is one.
    """
    for group, cls in classes.items():  # the chosen class starts from its own defaults, not another's
        if cls is not None:
            parser.set_defaults({group: {"class_path": f"{cls.__module__}.{cls.__qualname__}"}})
    for name in TRAINER_FLAGS:  # the flat flag's default must equal the nested one, or it would overwrite it
        parser.add_argument(f"--{name}", dest=f"trainer.{name}", default=parser.get_default(f"trainer.{name}"))
    add = parser.add_argument
    add("--seed", dest="seed_everything", type=int, default=0, help="the run's one seed: data, weights, order")
    add("--log_every_n_epochs", type=int, default=profile.log_every_n_epochs, help="print, validate every N epochs")
    add("--monitor", type=str, default="val/loss", help="the metric best.ckpt and early stopping follow")
    add("--mode", type=Literal["min", "max"], default="min", help="whether lower or higher is better")
    add("--patience", type=int | None, default=10, help="stop after N validations without a better value (null: never)")
    add("--min_delta", type=float, default=0.0, help="the smallest improvement of the monitored value that counts")
    add("--checkpoint_every_seconds", type=float, default=5.0, help="refresh last.ckpt at most this often")
    add(
        "--compile", type=bool, nargs="?", const=True, default=False, help="compile the model's forward (torch.compile)"
    )
    presets = ", ".join(profile.preset_names()) or "none here"
    add("--preset", action=preset_action(profile), help=f"a shipped config: {presets}")
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
    return add_flat_flags(parser, classes, linked, registered_arguments(profile))


def add_predict_flags(parser: LightningArgumentParser) -> None:
    """``predict``'s rows and output."""
    parser.add_argument("--x", type=str | None, default=None, help='rows: "[1, 1, 1]" or "[[1, 1, 1], [2, 0, 1]]"')
    parser.add_argument("--input", type=str | None, default=None, help="a CSV file of rows, or - for stdin")
    parser.add_argument("--output", type=str | None, default=None, help="also write the predictions to this file")
