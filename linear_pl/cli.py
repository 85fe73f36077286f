"""The command line: LightningCLI with flat everyday flags, presets and short names; fit or validate."""

import argparse
import os
import sys
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import TensorBoardLogger

from linear_pl.callbacks import TrainingLossWatch, early_stopping_on_val_loss, warn_about_clashes
from linear_pl.checkpointing import (
    AtomicCheckpointIO,
    RunCheckpoints,
    check_checkpoint_fits,
    load_checkpoint_safely,
    resolve_checkpoint,
    version_of,
)
from linear_pl.data_protocol import num_features_of
from linear_pl.errors import OneLineErrorParser, UsageError, check_trainer_flags, one_line, silence_known_noise
from linear_pl.flags import (
    BOOLEAN_FLAGS,
    DATA_NAMES,
    FLAT_FLAGS,
    MODEL_NAMES,
    PRESETS_DIR,
    as_flag,
    check_flat_flags,
    chosen_class_path,
    expand_names,
    expand_presets,
    import_class,
    init_parameters,
)  # fmt: skip
from linear_pl.internals import PerEpochCallback
from linear_pl.model import RegressionModel
from linear_pl.report import ProgressReport
from linear_pl.run import fit, validate
from linear_pl.run_dir import choose_run_dir

DESCRIPTION = """\
linear_pl trains a network with MSE and SGD on PyTorch Lightning: by default tutorial 1's dot product,
recovering known weights from synthetic data. --data takes synthetic, csv (--data.path FILE
--data.target_column NAME) or the class path of any LightningDataModule; --model takes linear, mlp or
a RegressionModel subclass. --preset seed-4w|seed-7w|lntx|lntx-1w|mlp-sine runs a shipped config.
Everyday flags: --max_epochs, --lr, --batch_size, --bias, --precondition, --patience, --seed,
--accelerator, --devices, --ckpt_path; every Trainer, model and data argument also as --group.name.
`train.py validate --ckpt_path best|last|PATH` reports a checkpoint's validation loss."""

TRAINER_DEFAULTS = {
    "max_epochs": 3000,  # an upper bound: runs stop once converged or on a validation plateau
    "enable_progress_bar": False,  # ProgressReport prints plain lines instead
    "enable_model_summary": False,
}
# The command's default run preconditions the inputs; LinearModel(...) in Python stays plain SGD.
MODEL_DEFAULTS = {"precondition": "auto"}


class SaveConfig(PerEpochCallback, SaveConfigCallback):
    """LightningCLI's config.yaml writer, without per-batch hooks (it acts once, at setup)."""


class LinearCLI(LightningCLI):
    """LightningCLI for linear_pl: the nested keys (--model.lr) plus flat aliases (--lr) and presets."""

    def __init__(self, args: list[str] | None = None, validate: bool = False, **kwargs) -> None:
        args = expand_names(expand_presets(sys.argv[1:] if args is None else list(args)))
        self.validating = validate
        self.model_path = chosen_class_path(args, "model", MODEL_NAMES["linear"])
        self.data_path = chosen_class_path(args, "data", DATA_NAMES["synthetic"])
        self.chosen_model = import_class(self.model_path, "model", RegressionModel)
        self.chosen_data = import_class(self.data_path, "data", L.LightningDataModule)
        check_flat_flags(args, "model", self.chosen_model, self.model_path)
        check_flat_flags(args, "data", self.chosen_data, self.data_path)
        # The command's own defaults go first, so that any config or flag after them overrides them.
        # (jsonargparse replaces init_args given in a subclass default by the class's own defaults.)
        taken = init_parameters(self.chosen_model)
        args = [f"--model.{key}={value}" for key, value in MODEL_DEFAULTS.items() if key in taken] + args
        super().__init__(
            RegressionModel,
            L.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            run=False,
            args=args,
            parser_class=OneLineErrorParser,
            parser_kwargs={"description": DESCRIPTION, "formatter_class": argparse.RawDescriptionHelpFormatter},
            trainer_defaults=TRAINER_DEFAULTS,
            seed_everything_default=0,
            auto_configure_optimizers=False,  # the model configures SGD itself
            save_config_callback=None if validate else SaveConfig,  # validate writes nothing
            save_config_kwargs={"overwrite": True},
            **kwargs,
        )

    def parse_arguments(self, parser: LightningArgumentParser, args: list[str]) -> None:
        self.config = parser.parse_args(args)
        check_trainer_flags(self.config.trainer)
        self.root = Path(self.config.trainer.default_root_dir or ".")
        self.ckpt_path = resolve_checkpoint(self.config.ckpt_path, self.root)
        self.checkpoint = None if self.ckpt_path is None else load_checkpoint_safely(self.ckpt_path)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.set_defaults({"model": {"class_path": self.model_path}, "data": {"class_path": self.data_path}})
        for group, names in FLAT_FLAGS.items():
            for name in names:
                extra = {"nargs": "?", "const": True} if name in BOOLEAN_FLAGS else {}
                if group == "trainer":
                    # The flat flag's default must equal the nested one, or it would overwrite it.
                    dest, default = f"trainer.{name}", parser.get_default(f"trainer.{name}")
                else:
                    # The model's and data's defaults depend on the class chosen: set only if given.
                    dest, default = f"{group}.init_args.{name}", argparse.SUPPRESS
                parser.add_argument(f"--{name}", dest=dest, default=default, help=f"alias of --{group}.{name}", **extra)
        parser.add_argument(
            "--seed", dest="seed_everything", default=0, help="the run's one seed: data, weights, order"
        )
        parser.add_argument("--log_every_n_epochs", type=int, default=10, help="print, log, validate every N epochs")
        parser.add_argument("--ckpt_path", type=str | None, default=None, help="resume from: last, best or a path")
        parser.add_argument(
            "--patience",
            type=int | None,
            default=10,
            help="stop after N validations without a lower val/loss (null: never)",
        )
        parser.add_argument(
            "--min_delta", type=float, default=0.0, help="the smallest decrease of val/loss that counts"
        )
        parser.add_argument(
            "--checkpoint_every_seconds", type=float, default=5.0, help="refresh last.ckpt at most this often"
        )
        presets = ", ".join(sorted(p.stem for p in PRESETS_DIR.glob("*.yaml")))
        parser.add_argument("--preset", type=str | None, default=None, help=f"a shipped config: {presets}")
        # The model's size follows from the data; the run's one seed also seeds the data, where it takes one.
        parser.link_arguments(
            "data", "model.init_args.num_features", compute_fn=num_features_of, apply_on="instantiate"
        )
        if "seed" in init_parameters(self.chosen_data):
            parser.link_arguments("seed_everything", "data.init_args.seed")
        parser.link_arguments("log_every_n_epochs", "trainer.check_val_every_n_epoch")

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except ValueError as error:  # the classes name their arguments; the command speaks in flags
            while isinstance(error.__cause__, ValueError):  # jsonargparse wraps what the size link raised
                error = error.__cause__
            classes = {"model": self.chosen_model, "data": self.chosen_data}
            raise UsageError(as_flag(one_line(str(error)), classes)) from None

    def after_instantiate_classes(self) -> None:
        if self.checkpoint is not None:
            check_checkpoint_fits(self.ckpt_path, self.checkpoint, self.model)
            if self.validating:  # the weights alone: no training state, nothing written
                self.model.load_state_dict(self.checkpoint["state_dict"])
            del self.checkpoint  # fit loads it again, through AtomicCheckpointIO

    def instantiate_trainer(self, **kwargs) -> Trainer:
        config, theirs = self.config.trainer, self.config_init.trainer.callbacks or []
        # A run directory of our own (claimed atomically) unless the user's logger keeps its own, or
        # nothing is written: validate, fast_dev_run (Lightning's DummyLogger).
        self.run_dir = None
        if config.logger in (None, True) and not (self.validating or config.fast_dev_run):
            # Resuming continues the checkpoint's run. default_hp_metric=False: the hparams get a real
            # metric at the end instead of -1.
            self.run_dir = choose_run_dir(self.root, version_of(self.ckpt_path, self.root))
            version = None if self.run_dir is None else self.run_dir.name
            kwargs["logger"] = TensorBoardLogger(self.root, version=version, default_hp_metric=False)
        if self.validating:
            kwargs["logger"] = False
        self.progress = ProgressReport(self.config.log_every_n_epochs)
        self.loss_watch = TrainingLossWatch()
        dirpath = None if self.run_dir is None else self.run_dir / "checkpoints"
        self.checkpoints = (
            None
            if (config.fast_dev_run or self.validating)
            else RunCheckpoints(self.config.checkpoint_every_seconds, dirpath=dirpath)
        )
        self.early_stopping = early_stopping_on_val_loss(theirs, self.config.patience, self.config.min_delta)
        warn_about_clashes(theirs)
        ours = [self.progress, self.loss_watch, self.checkpoints]
        ours += [self.early_stopping] if self.early_stopping not in theirs else []
        kwargs["callbacks"] = theirs + [c for c in ours if c is not None]
        kwargs["plugins"] = [AtomicCheckpointIO()]
        return super().instantiate_trainer(**kwargs)


def cli_main(args: list[str] | None = None) -> int:
    """Train (``fit``, the default) or ``validate`` a checkpoint from the command line; the exit status."""
    silence_known_noise()
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # --data mymodule.MyData finds mymodule.py here, as `python -m` would
    args = sys.argv[1:] if args is None else list(args)
    command = args.pop(0) if args[:1] in (["fit"], ["validate"]) else "fit"  # LightningCLI's own spelling
    try:
        cli = LinearCLI(args, validate=command == "validate")
    except (UsageError, ValueError) as error:  # the constructors' argument checks raise ValueError
        print(f"error: {one_line(str(error))}", file=sys.stderr)
        return 2
    try:
        return validate(cli) if command == "validate" else fit(cli, args)
    finally:
        # Under DDP on CPU/gloo the process may abort at exit ("terminate called without an active
        # exception") unless the process group is torn down first; Lightning leaves it up after fit.
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
