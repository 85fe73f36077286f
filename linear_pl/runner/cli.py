"""The command line: LightningCLI with flat everyday flags, presets and short names; fit, validate or test.

It serves any LightningModule on any LightningDataModule, and asks them only what Lightning asks.
"""

import argparse
import os
import sys
from pathlib import Path
from typing import Literal

import lightning as L
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import TensorBoardLogger

from linear_pl.runner.checkpointing import (
    AtomicCheckpointIO,
    RunCheckpoints,
    check_checkpoint_fits,
    load_checkpoint_safely,
    resolve_checkpoint,
    version_of,
)
from linear_pl.runner.errors import (
    OneLineErrorParser,
    UsageError,
    check_trainer_flags,
    one_line,
    silence_known_noise,
    what_was_rejected,
)
from linear_pl.runner.flags import (
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
from linear_pl.runner.internals import PerEpochCallback
from linear_pl.runner.monitor import Monitor
from linear_pl.runner.progress import ProgressReport
from linear_pl.runner.run import evaluate, fit
from linear_pl.runner.run_dir import choose_run_dir, release_run_dir
from linear_pl.runner.sizing import num_features_of
from linear_pl.runner.watch import LossWatch, early_stopping, warn_about_clashes

DESCRIPTION = """\
linear_pl trains any LightningModule on any LightningDataModule; by default tutorial 1's dot product,
recovering known weights from synthetic data with MSE and SGD. --model takes linear, mlp or the class
path of any LightningModule; --data takes synthetic, csv (--data.path FILE --data.target_column NAME)
or the class path of any LightningDataModule. --preset seed-4w|seed-7w|lntx|lntx-1w|mlp-sine runs a
shipped config. --monitor NAME --mode min|max: what best.ckpt and early stopping follow (val/loss).
Everyday flags: --max_epochs, --lr, --batch_size, --bias, --precondition, --patience, --seed,
--accelerator, --devices, --precision, --ckpt_path; every Trainer, model and data argument also as
--group.name; --optimizer CLASS and --lr_scheduler CLASS as LightningCLI has them.
`train.py validate|test --ckpt_path best|last|PATH` evaluates a checkpoint."""

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
    """LightningCLI for linear_pl: the nested keys (--model.lr) plus flat aliases (--lr) and presets.

    ``command`` is ``fit`` (train), or ``validate`` or ``test`` (evaluate a checkpoint, write nothing).
    A caller that runs the command many times in one process (a sweep) may hand each run its own
    ``run_dir`` and ``callbacks``, or ask it only to ``parse`` the flags (``self.config``; nothing is built).
    """

    def __init__(
        self,
        args: list[str] | None = None,
        command: str = "fit",
        run_dir: Path | None = None,
        callbacks: list[L.Callback] | None = None,
        parse_only: bool = False,
        **kwargs,
    ) -> None:
        args = expand_names(expand_presets(sys.argv[1:] if args is None else list(args)))
        self.evaluating = command != "fit"
        self.given_run_dir, self.given_callbacks, self.parse_only = run_dir, callbacks or [], parse_only
        self.model_path = chosen_class_path(args, "model", MODEL_NAMES["linear"])
        self.data_path = chosen_class_path(args, "data", DATA_NAMES["synthetic"])
        self.chosen_model = import_class(self.model_path, "model", L.LightningModule)
        self.chosen_data = import_class(self.data_path, "data", L.LightningDataModule)
        check_flat_flags(args, "model", self.chosen_model, self.model_path)
        check_flat_flags(args, "data", self.chosen_data, self.data_path)
        # The command's own defaults go first, so that any config or flag after them overrides them.
        # (jsonargparse replaces init_args given in a subclass default by the class's own defaults.)
        taken = init_parameters(self.chosen_model)
        args = [f"--model.{key}={value}" for key, value in MODEL_DEFAULTS.items() if key in taken] + args
        super().__init__(
            L.LightningModule,
            L.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            run=False,
            args=args,
            parser_class=OneLineErrorParser,
            parser_kwargs={"description": DESCRIPTION, "formatter_class": argparse.RawDescriptionHelpFormatter},
            trainer_defaults=TRAINER_DEFAULTS,
            seed_everything_default=0,
            save_config_callback=None if self.evaluating else SaveConfig,  # validate and test write nothing
            save_config_kwargs={"overwrite": True},
            **kwargs,
        )

    def parse_arguments(self, parser: LightningArgumentParser, args: list[str]) -> None:
        self.config = parser.parse_args(args)
        check_trainer_flags(self.config.trainer)
        if self.config.log_every_n_epochs < 1:
            raise UsageError(f"--log_every_n_epochs {self.config.log_every_n_epochs}: must be >= 1")
        if self.config.lr_scheduler is not None and self.config.optimizer is None:
            raise UsageError(
                "--lr_scheduler CLASS: give --optimizer CLASS too (LightningCLI schedules its own optimizer)"
            )
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
            "--seed", dest="seed_everything", type=int, default=0, help="the run's one seed: data, weights, order"
        )
        parser.add_argument("--log_every_n_epochs", type=int, default=10, help="print, log, validate every N epochs")
        parser.add_argument("--ckpt_path", type=str | None, default=None, help="resume from: last, best or a path")
        parser.add_argument(
            "--monitor", type=str, default="val/loss", help="the metric best.ckpt and early stopping follow"
        )
        parser.add_argument(
            "--mode", type=Literal["min", "max"], default="min", help="whether lower or higher is better"
        )
        parser.add_argument(
            "--patience",
            type=int | None,
            default=10,
            help="stop after N validations without a better monitored value (null: never)",
        )
        parser.add_argument(
            "--min_delta", type=float, default=0.0, help="the smallest improvement of the monitored value that counts"
        )
        parser.add_argument(
            "--checkpoint_every_seconds", type=float, default=5.0, help="refresh last.ckpt at most this often"
        )
        parser.add_argument(
            "--compile", type=bool, default=False, help="compile the model's forward with torch.compile"
        )
        presets = ", ".join(sorted(p.stem for p in PRESETS_DIR.glob("*.yaml")))
        parser.add_argument("--preset", type=str | None, default=None, help=f"a shipped config: {presets}")
        # A model that takes num_features sizes itself from the data; the run's one seed also seeds
        # the data, where it takes one.
        if "num_features" in init_parameters(self.chosen_model):
            parser.link_arguments(
                "data", "model.init_args.num_features", compute_fn=num_features_of, apply_on="instantiate"
            )
        if "seed" in init_parameters(self.chosen_data):
            parser.link_arguments("seed_everything", "data.init_args.seed")
        parser.link_arguments("log_every_n_epochs", "trainer.check_val_every_n_epoch")

    def instantiate_classes(self) -> None:
        if self.parse_only:
            return
        # Whatever Lightning, jsonargparse or the classes reject while the Trainer, model and data are
        # built is bad input: one line, exit 2. The classes name their arguments; the command speaks in flags.
        try:
            super().instantiate_classes()
        except UsageError:
            raise
        except Exception as error:
            classes = {"model": self.chosen_model, "data": self.chosen_data}
            raise UsageError(as_flag(what_was_rejected(error), classes)) from None

    def after_instantiate_classes(self) -> None:
        if self.parse_only:
            return
        if self.checkpoint is not None:
            check_checkpoint_fits(self.ckpt_path, self.checkpoint, self.model)
            if self.evaluating:  # the weights alone: no training state, nothing written
                self.model.load_state_dict(self.checkpoint["state_dict"])
            del self.checkpoint  # fit loads it again, through AtomicCheckpointIO
        if self.config.compile:
            self.model = compiled(self.model)

    def instantiate_trainer(self, **kwargs) -> Trainer:
        config, theirs = self.config.trainer, self.config_init.trainer.callbacks or []
        # A run directory of our own (claimed atomically) unless the user's logger keeps its own, or
        # nothing is written: validate, test, fast_dev_run (Lightning's DummyLogger).
        self.run_dir = None
        if config.logger in (None, True) and not (self.evaluating or config.fast_dev_run):
            # Resuming continues the checkpoint's run. default_hp_metric=False: the hparams get a real
            # metric at the end instead of -1.
            if self.given_run_dir is not None:  # the caller claimed it
                self.run_dir = self.given_run_dir
                where = {"save_dir": self.run_dir.parent, "name": "", "version": self.run_dir.name}
            else:
                self.run_dir = choose_run_dir(self.root, version_of(self.ckpt_path, self.root))
                where = {"save_dir": self.root, "version": None if self.run_dir is None else self.run_dir.name}
            kwargs["logger"] = TensorBoardLogger(**where, default_hp_metric=False)
        if self.evaluating:
            kwargs["logger"] = False
        self.monitor = Monitor(self.config.monitor, self.config.mode, self.config.log_every_n_epochs)
        self.progress = ProgressReport(self.config.log_every_n_epochs, self.monitor)
        self.loss_watch = LossWatch()
        dirpath = None if self.run_dir is None else self.run_dir / "checkpoints"
        self.checkpoints = (
            None
            if (config.fast_dev_run or self.evaluating)
            else RunCheckpoints(self.config.checkpoint_every_seconds, self.monitor, dirpath=dirpath)
        )
        self.early_stopping = early_stopping(theirs, self.monitor, self.config.patience, self.config.min_delta)
        warn_about_clashes(theirs)
        ours = [*self.given_callbacks, self.progress, self.loss_watch, self.checkpoints]
        ours += [self.early_stopping] if self.early_stopping not in theirs else []
        kwargs["callbacks"] = theirs + [c for c in ours if c is not None]
        kwargs["plugins"] = [AtomicCheckpointIO()]
        try:
            return super().instantiate_trainer(**kwargs)
        except Exception:
            release_run_dir(self.run_dir)  # a Trainer flag was refused: nothing is left written
            raise


def compiled(model: L.LightningModule) -> L.LightningModule:
    """The model with its ``forward`` compiled by ``torch.compile``, after checking that compiling works
    here at all: one line if it cannot.

    Only ``forward``, which the steps call, and not the whole module: compiling the module would trace
    the training step too, and Lightning's ``self.log`` inside it cannot be traced (torch 2.13,
    Lightning 2.6). The weights keep their names, so checkpoints load with or without ``--compile``.
    """
    try:
        torch.compile(lambda x: x + 1)(torch.zeros(1))
    except Exception as error:  # no C++ compiler, an unsupported Python or platform, ...
        raise UsageError(f"--compile: torch.compile cannot work on this machine ({what_was_rejected(error)})") from None
    model.forward = torch.compile(model.forward)
    return model


def importable_from_cwd() -> None:
    """--data mymodule.MyData finds mymodule.py in the current directory, as ``python -m`` would."""
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())


def cli_main(args: list[str] | None = None) -> int:
    """Train (``fit``, the default), or ``validate`` or ``test`` a checkpoint; returns the exit status."""
    silence_known_noise()
    importable_from_cwd()
    args = sys.argv[1:] if args is None else list(args)
    command = args.pop(0) if args[:1] in (["fit"], ["validate"], ["test"]) else "fit"  # LightningCLI's spelling
    try:
        cli = LinearCLI(args, command=command)
    except UsageError as error:
        print(f"error: {one_line(str(error))}", file=sys.stderr)
        return 2
    try:
        return fit(cli, args) if command == "fit" else evaluate(cli, command)
    finally:
        # Under DDP on CPU/gloo the process may abort at exit ("terminate called without an active
        # exception") unless the process group is torn down first; Lightning leaves it up after fit.
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
