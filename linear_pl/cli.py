"""The command line: LightningCLI with flat everyday flags, short names and presets, then a report."""

import argparse
import inspect
import os
import sys
import time
from importlib import import_module
from pathlib import Path

import lightning as L
import torch
import yaml
from jsonargparse import Namespace
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger

from linear_pl.callbacks import LearningRateGuard, StopWhenConverged, TrainingDiverged
from linear_pl.checkpointing import (
    AtomicCheckpointIO,
    RunCheckpoints,
    check_checkpoint_fits,
    load_checkpoint_safely,
    resolve_checkpoint,
    version_of,
)
from linear_pl.data_protocol import num_features_of, true_weights_of
from linear_pl.errors import OneLineErrorParser, UsageError, check_accelerator, one_line, silence_known_noise
from linear_pl.model import RegressionModel
from linear_pl.report import ProgressReport, format_table, rank_weight_spread, summarize, write_results

PRESETS_DIR = Path(__file__).parent / "presets"

# Flat flags for everyday use, each an alias of the nested key of the same name: --lr is --model.lr.
# A model or data flag applies only to the classes that take that argument.
FLAT_FLAGS = {
    "trainer": ["accelerator", "devices", "strategy", "num_nodes", "precision", "max_epochs", "default_root_dir"],
    "model": ["lr", "momentum", "lr_scheduler", "step_size", "gamma", "bias", "precondition", "hidden_sizes"],
    "data": [
        "batch_size",
        "num_samples",
        "num_val_samples",
        "true_weights",
        "true_bias",
        "low",
        "high",
        "noise_std",
        "shuffle",
        "target",
    ],
}
# --model and --data take a class path (any subclass of RegressionModel, any LightningDataModule) or
# one of these short names.
MODEL_NAMES = {"linear": "linear_pl.model.LinearModel", "mlp": "linear_pl.model.MLPModel"}
DATA_NAMES = {"synthetic": "linear_pl.data.SyntheticDataModule", "csv": "linear_pl.csv_data.CSVDataModule"}
BOOLEAN_FLAGS = {"bias", "shuffle"}

TRAINER_DEFAULTS = {
    "max_epochs": 3000,  # an upper bound: runs stop once converged or on a validation plateau
    "enable_progress_bar": False,  # ProgressReport prints plain lines instead
    "enable_model_summary": False,
    "log_every_n_steps": 1,  # nothing is logged per step; this only quiets a warning on short epochs
}
# The command's default run preconditions the inputs; LinearModel(...) in Python stays plain SGD.
MODEL_DEFAULTS = {"precondition": "auto"}


def expand_names(args: list[str]) -> list[str]:
    """``--model mlp`` becomes ``--model linear_pl.model.MLPModel``; likewise ``--data synthetic|csv``."""
    expanded = list(args)
    for i, arg in enumerate(args):
        for flag, names in (("--model", MODEL_NAMES), ("--data", DATA_NAMES)):
            if arg == flag and i + 1 < len(args):
                at, value = i + 1, args[i + 1]
            elif arg.startswith(f"{flag}="):
                at, value = i, arg.partition("=")[2]
            else:
                continue
            if value in names:
                expanded[at] = names[value] if at > i else f"{flag}={names[value]}"
            elif "." not in value and not value[:1].isupper():  # not a class name or path either
                raise UsageError(f"{flag} {value}: unknown; choose {' or '.join(names)}, or give a class path")
    return expanded


def expand_presets(args: list[str]) -> list[str]:
    """``--preset NAME`` becomes ``--config <shipped NAME.yaml>`` in place, so later flags override it."""
    expanded = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--preset" or arg.startswith("--preset="):
            name = arg.partition("=")[2] if "=" in arg else (args[i + 1] if i + 1 < len(args) else "")
            i += 1 if "=" in arg else 2
            path = PRESETS_DIR / f"{name}.yaml"
            if not path.is_file():
                known = ", ".join(sorted(p.stem for p in PRESETS_DIR.glob("*.yaml")))
                raise UsageError(f"--preset {name!r}: unknown preset; choose one of {known}")
            expanded += ["--preset", name, "--config", str(path)]
            continue
        expanded.append(arg)
        i += 1
    return expanded


def _flag_values(args: list[str], flag: str) -> list[tuple[int, str]]:
    """Where ``flag`` is given (as ``flag value`` or ``flag=value``), and its values, in order."""
    found = []
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            found.append((i, args[i + 1]))
        elif arg.startswith(f"{flag}="):
            found.append((i, arg.partition("=")[2]))
    return found


def _class_in_config(path: str, group: str) -> str | None:
    try:
        entry = (yaml.safe_load(Path(path).read_text()) or {}).get(group)
    except (OSError, yaml.YAMLError, AttributeError):
        return None  # jsonargparse reports a bad config file in its own words
    return entry if isinstance(entry, str) else entry.get("class_path") if isinstance(entry, dict) else None


def chosen_class_path(args: list[str], group: str, default: str) -> str:
    """The class ``--model``/``--data`` names in the end: the last one given by a flag or a config file.

    It becomes the parser's default, so that the chosen class starts from its own defaults:
    jsonargparse keeps the previous class's values for arguments of the same name when a new
    class_path is given (by design), which would hand SyntheticDataModule's batch_size 1 to a
    user's data module.
    """
    chosen = {}
    for flag in (f"--{group}", f"--{group}.class_path"):
        chosen.update(_flag_values(args, flag))
    for i, path in _flag_values(args, "--config"):
        if (class_path := _class_in_config(path, group)) is not None:
            chosen[i] = class_path
    return chosen[max(chosen)] if chosen else default


def import_class(class_path: str, group: str, base: type) -> type:
    """The class a class path names; one line if it cannot be imported or is not a ``base``."""
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(import_module(module), name)
    except (ImportError, AttributeError, ValueError) as error:
        raise UsageError(f"--{group} {class_path}: cannot import it ({error})") from None
    if not (inspect.isclass(cls) and issubclass(cls, base)):
        raise UsageError(f"--{group} {class_path}: not a {base.__name__}")
    return cls


def init_parameters(cls: type) -> set[str]:
    """The argument names ``cls(...)`` takes, following ``**kwargs`` passed on to a parent's ``__init__``."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameters = list(inspect.signature(klass.__init__).parameters.values())[1:]
        names |= {p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            break
    return names


def check_flat_flags(args: list[str], group: str, cls: type, class_path: str, short_names: dict) -> None:
    """A model or data flag given for a class that takes no such argument: one line naming who does."""
    taken = init_parameters(cls)
    for name in FLAT_FLAGS[group]:
        if name not in taken and (_flag_values(args, f"--{name}") or f"--{name}" in args):
            owners = [
                short
                for short, path in short_names.items()
                if name in init_parameters(import_class(path, group, object))
            ]
            where = f"--{group} {' or '.join(owners)} only" if owners else "another class"
            raise UsageError(f"--{name}: {class_path} takes no {name}; the flag applies to {where}")


def check_trainer_flags(trainer: Namespace) -> None:
    """Fail in one line, before anything starts, on Trainer flags that cannot work here."""
    check_accelerator(trainer.accelerator)
    if trainer.max_epochs is not None and trainer.max_epochs < 1:
        raise UsageError(f"--max_epochs {trainer.max_epochs}: must be >= 1")


class LinearCLI(LightningCLI):
    """LightningCLI for linear_pl: the nested keys (--model.lr) plus flat aliases (--lr) and presets."""

    def __init__(self, args: list[str] | None = None, **kwargs) -> None:
        args = expand_names(expand_presets(sys.argv[1:] if args is None else list(args)))
        self.model_path = chosen_class_path(args, "model", MODEL_NAMES["linear"])
        self.data_path = chosen_class_path(args, "data", DATA_NAMES["synthetic"])
        self.model_class = import_class(self.model_path, "model", RegressionModel)
        self.data_class = import_class(self.data_path, "data", L.LightningDataModule)
        check_flat_flags(args, "model", self.model_class, self.model_path, MODEL_NAMES)
        check_flat_flags(args, "data", self.data_class, self.data_path, DATA_NAMES)
        # The command's own defaults go first, so that any config or flag after them overrides them.
        # (jsonargparse replaces init_args given in a subclass default by the class's own defaults.)
        taken = init_parameters(self.model_class)
        args = [f"--model.{key}={value}" for key, value in MODEL_DEFAULTS.items() if key in taken] + args
        super().__init__(
            RegressionModel,
            L.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            run=False,
            args=args,
            parser_class=OneLineErrorParser,
            trainer_defaults=TRAINER_DEFAULTS,
            seed_everything_default=0,
            auto_configure_optimizers=False,  # the model configures SGD itself
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
        parser.set_defaults({"model": {"class_path": self.model_path}, "data": {"class_path": self.data_path}})
        parser.add_argument(
            "--seed", dest="seed_everything", default=0, help="the run's one seed: data, weights, order"
        )
        parser.add_argument(
            "--log_every_n_epochs", type=int, default=10, help="print, log to TensorBoard, validate every N epochs"
        )
        parser.add_argument(
            "--ckpt_path", type=str | None, default=None, help="resume from this checkpoint, or 'last': the newest run"
        )
        parser.add_argument(
            "--patience", type=int | None, default=10,
            help="stop after this many validations without improvement of val/loss (null: never)",
        )  # fmt: skip
        parser.add_argument(
            "--min_delta", type=float, default=0.0, help="the smallest decrease of val/loss that counts as improvement"
        )
        parser.add_argument(
            "--checkpoint_every_seconds",
            type=float,
            default=5.0,
            help="refresh last.ckpt after an epoch at most this often",
        )
        presets = ", ".join(sorted(p.stem for p in PRESETS_DIR.glob("*.yaml")))
        parser.add_argument("--preset", type=str | None, default=None, help=f"a shipped config: {presets}")
        # The model's size follows from the data; the run's seed also seeds the data, where it takes one.
        parser.link_arguments(
            "data", "model.init_args.num_features", compute_fn=num_features_of, apply_on="instantiate"
        )
        if "seed" in init_parameters(self.data_class):
            parser.link_arguments("seed_everything", "data.init_args.seed")
        parser.link_arguments("log_every_n_epochs", "trainer.check_val_every_n_epoch")

    def after_instantiate_classes(self) -> None:
        if self.checkpoint is not None:
            check_checkpoint_fits(self.ckpt_path, self.checkpoint, self.model)
            del self.checkpoint  # Lightning loads it again, through AtomicCheckpointIO

    def instantiate_trainer(self, **kwargs) -> Trainer:
        config = self.config.trainer
        if config.logger in (None, True):
            # Our own TensorBoard logger: default_hp_metric=False, because the hparams get a real
            # metric at the end of the run instead of Lightning's -1 placeholder.
            # Resuming continues the checkpoint's own run directory and TensorBoard curves.
            version = version_of(self.ckpt_path, self.root)
            kwargs["logger"] = TensorBoardLogger(self.root, version=version, default_hp_metric=False)
        self.progress = ProgressReport(self.config.log_every_n_epochs)
        self.checkpoints = RunCheckpoints(self.config.checkpoint_every_seconds)
        callbacks = [self.progress, self.checkpoints, LearningRateGuard()]
        self.convergence = StopWhenConverged() if true_weights_of(self.datamodule) is not None else None
        self.early_stopping = None
        if self.config.patience is not None:
            self.early_stopping = EarlyStopping(
                "val/loss", min_delta=self.config.min_delta, patience=self.config.patience, check_finite=False
            )
        callbacks += [c for c in (self.convergence, self.early_stopping) if c is not None]
        kwargs["callbacks"] = (self.config_init.trainer.callbacks or []) + callbacks
        kwargs["plugins"] = [AtomicCheckpointIO()]
        return super().instantiate_trainer(**kwargs)

    def stopped_because(self, diverged: bool) -> str:
        """Why training ended: converged, val_plateau, max_epochs or diverged."""
        if diverged:
            return "diverged"
        if self.convergence is not None and self.convergence.stopped_epoch > 0:
            return "converged"
        if self.early_stopping is not None and self.early_stopping.stopped_epoch > 0:
            return "val_plateau"
        return "max_epochs"


def cli_main(args: list[str] | None = None) -> int:
    """Train from the command line; returns the exit status."""
    silence_known_noise()
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # --data mymodule.MyData finds mymodule.py here, as `python -m` would
    try:
        cli = LinearCLI(args)
    except (UsageError, ValueError) as error:  # the constructors' argument checks raise ValueError
        print(f"error: {one_line(str(error))}", file=sys.stderr)
        return 2
    try:
        return _fit_and_report(cli)
    finally:
        # Under DDP on CPU/gloo the process may abort at exit ("terminate called without an active
        # exception") unless the process group is torn down first; Lightning leaves it up after fit.
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _fit_and_report(cli: LinearCLI) -> int:
    trainer, model, datamodule = cli.trainer, cli.model, cli.datamodule
    start = time.perf_counter()
    try:
        trainer.fit(model, datamodule, ckpt_path=cli.ckpt_path)
        diverged = None
    except TrainingDiverged as error:
        diverged = error
    fit_seconds = time.perf_counter() - start
    # Both collectives under DDP: every rank must ask.
    run_dir = Path(trainer.log_dir)
    spread = rank_weight_spread(trainer, model)

    # The final losses and verdict are read before validate() below, which resets the metrics.
    metrics = dict(trainer.callback_metrics)
    stopped_because = cli.stopped_because(diverged is not None)
    if diverged is None and cli.progress.last_reported_epoch != trainer.current_epoch:
        # Stopped between report epochs (converged): validate the final weights, so the last line,
        # TensorBoard and results.json all describe them.
        trainer.validate(model, datamodule, verbose=False)
        metrics.update(trainer.callback_metrics)
        cli.progress.report(trainer, model, trainer.current_epoch, metrics)
    if trainer.is_global_zero:  # every rank holds the same weights; one report is enough
        results = summarize(
            trainer, model, datamodule, cli.progress, cli.checkpoints, metrics, fit_seconds, stopped_because, spread
        )
        if diverged is None:
            names = getattr(datamodule, "feature_names", None)
            print(format_table(results, names, lr_was_auto=model.hparams.get("lr") == "auto"))
        write_results(results, run_dir, trainer, model)
    if diverged is not None:
        if trainer.is_global_zero:
            last = run_dir / "checkpoints" / "last.ckpt"
            kept = f"last good checkpoint kept: {last}" if last.exists() else "no checkpoint had been written yet"
            print(f"error: {diverged}; {kept}", file=sys.stderr)
        return 1
    return 0
