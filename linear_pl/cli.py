"""The command line: LightningCLI with flat everyday flags, presets, and a report at the end."""

import argparse
import logging
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from jsonargparse import Namespace
from jsonargparse._deprecated import JsonargparseDeprecationWarning
from lightning.pytorch import Trainer
from lightning.pytorch.accelerators import AcceleratorRegistry, CUDAAccelerator, MPSAccelerator
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.tuner import Tuner

from linear_pl.callbacks import LearningRateGuard, StopWhenConverged, TrainingDiverged
from linear_pl.checkpointing import AtomicCheckpointIO, LastCheckpoint
from linear_pl.closed_form import SAFETY_FACTOR
from linear_pl.data import SyntheticDataModule
from linear_pl.model import RegressionModel
from linear_pl.report import ProgressReport, format_table, rank_weight_spread, summarize, write_results

PRESETS_DIR = Path(__file__).parent / "presets"

# Flat flags for everyday use, each an alias of the nested key of the same name: --lr is --model.lr.
FLAT_FLAGS = {
    "trainer": ["accelerator", "devices", "strategy", "num_nodes", "precision", "max_epochs", "default_root_dir"],
    "model": ["lr", "momentum", "lr_scheduler", "step_size", "gamma", "bias", "hidden_sizes"],
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
        "seed",
        "target",
    ],
}
# --model and --data take a class path (any subclass of RegressionModel, any LightningDataModule) or
# one of these short names.
MODEL_NAMES = {"linear": "linear_pl.model.LinearModel", "mlp": "linear_pl.model.MLPModel"}
DATA_NAMES = {"synthetic": "linear_pl.data.SyntheticDataModule"}
BOOLEAN_FLAGS = {"bias", "shuffle"}

TRAINER_DEFAULTS = {
    "max_epochs": 3000,  # an upper bound: runs stop once converged (StopWhenConverged)
    "enable_progress_bar": False,  # ProgressReport prints plain lines instead
    "enable_model_summary": False,
    "log_every_n_steps": 1,  # nothing is logged per step; this only quiets a warning on short epochs
}


class UsageError(Exception):
    """Bad input: reported as one line on stderr, exit status 2."""


def one_line(message: str) -> str:
    """jsonargparse's message for a bad --model/--data value, cut to its reason, on one line.

    For a class chosen by --model or --data (a Union with None), jsonargparse lists why the value
    fits neither: the class's reason is the one that matters, with its key given in full.
    """
    raw = [line for line in message.splitlines() if line.strip()]
    lines = [line.strip() for line in raw]
    depth = min((len(r) - len(r.lstrip()) for r in raw if r.strip().startswith("- ")), default=0)
    items: list[str] = []  # each top-level "- reason", with the (deeper) lines that continue it
    for line, stripped in zip(raw[1:], lines[1:]):
        if stripped.startswith("- ") and len(line) - len(line.lstrip()) == depth:
            items.append(stripped[2:])
        elif items and not stripped.startswith(("Given value type", "Subtypes", "Errors:", "Does not validate")):
            items[-1] += " " + stripped
    reasons = [item for item in items if "NoneType" not in item]
    if not reasons:
        return " ".join(message.split())
    reason = re.sub(r"^Problem with given class_path '[^']*': ", "", reasons[0])
    group = re.match(r'Parser key "(\w+)"', lines[0])
    if group:
        reason = re.sub(r'^Parser key "', f'Parser key "{group[1]}.', reason)
    return " ".join(reason.split())


class OneLineErrorParser(LightningArgumentParser):
    """jsonargparse prints the usage and a multi-line message; we print the message on one line."""

    def error(self, message: str, ex: Exception | None = None) -> None:
        if not self.exit_on_error:
            return super().error(message, ex)
        raise UsageError(one_line(message))


# "Seed set to N" too: the seed is in config.yaml, and the line would precede any error message.
# Under DDP the other ranks prefix it with "[rank: N] ".
_KNOWN_NOISE = re.compile(r"(\[rank: \d+\] )?(💡 Tip|Seed set to)")


def _not_a_tip(record: logging.LogRecord) -> bool:
    return not _KNOWN_NOISE.match(record.getMessage())


def silence_known_noise() -> None:
    """Drop the specific messages Lightning 2.6 with torch 2.13 prints on every run; nothing else."""
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
    # Lightning 2.6's own calls into jsonargparse APIs deprecated in 4.49 (not ours to change).
    warnings.filterwarnings("ignore", category=JsonargparseDeprecationWarning, module=r"lightning\.pytorch\.cli")
    # Data lives in tensors on the device: worker processes would only add copies.
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.seed"):
        logging.getLogger(name).addFilter(_not_a_tip)  # a set: added once however often this runs


def expand_names(args: list[str]) -> list[str]:
    """``--model mlp`` becomes ``--model linear_pl.model.MLPModel``; likewise ``--data synthetic``."""
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


def check_accelerator(name: object) -> None:
    """Fail in one line, before anything starts, when the accelerator is unknown or absent here."""
    known = ["auto", "cpu", "gpu", *sorted(set(AcceleratorRegistry.available_accelerators()) - {"cpu"})]
    if isinstance(name, str) and name not in known:
        raise UsageError(f"--accelerator {name}: unknown; choose one of {', '.join(known)}")
    available = {"cuda": CUDAAccelerator.is_available(), "mps": MPSAccelerator.is_available()}
    have = "cpu" + "".join(f", {k}" for k, ok in available.items() if ok)
    if name == "gpu" and not any(available.values()) or name in available and not available[name]:
        raise UsageError(f"--accelerator {name}: no GPU is available on this machine (available: {have})")


def check_trainer_flags(trainer: Namespace) -> None:
    """Fail in one line, before anything starts, on Trainer flags that cannot work here."""
    check_accelerator(trainer.accelerator)
    if trainer.max_epochs is not None and trainer.max_epochs < 1:
        raise UsageError(f"--max_epochs {trainer.max_epochs}: must be >= 1")


def resolve_checkpoint(ckpt_path: str | None, root: Path) -> Path | None:
    """``last`` means the newest run under ``root`` that has a last.ckpt; anything else is a path.

    Lightning's own ckpt_path="last" looks only in the new run's (empty) folder and silently trains
    from scratch, which is why this exists.
    """
    if ckpt_path is None:
        return None
    if ckpt_path == "last":
        runs = [p for p in (root / "lightning_logs").glob("version_*/checkpoints/last.ckpt")]
        if not runs:
            raise UsageError(f"--ckpt_path last: no earlier run with a checkpoint under {root / 'lightning_logs'}")
        return max(runs, key=lambda p: int(p.parent.parent.name.removeprefix("version_")))
    path = Path(ckpt_path)
    if not path.is_file():
        raise UsageError(f"--ckpt_path {ckpt_path}: no such file")
    return path


def load_checkpoint_safely(path: Path) -> dict:
    """torch.load with weights_only=True: a checkpoint that would run code when unpickled is refused."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated, not a checkpoint, or unsafe to unpickle: all unusable
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError(f"--ckpt_path {path}: not a usable checkpoint ({reason})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UsageError(f"--ckpt_path {path}: not a usable checkpoint (no state_dict)")
    return checkpoint


def check_checkpoint_fits(path: Path, checkpoint: dict, model: torch.nn.Module) -> None:
    """Fail in one line when the checkpoint's parameters do not fit this run's model."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in checkpoint["state_dict"].items()}
    if expected != found:
        raise UsageError(
            f"--ckpt_path {path}: holds parameters {found}, but this run's model has {expected} "
            "(give the --model, --true_weights, --bias or --hidden_sizes it was trained with)"
        )


def version_of(checkpoint: Path | None, root: Path) -> int | None:
    """The run version a checkpoint belongs to, if it lies in root/lightning_logs/version_N/checkpoints."""
    if checkpoint is None:
        return None
    run_dir = checkpoint.resolve().parent.parent
    if run_dir.parent == (root / "lightning_logs").resolve() and run_dir.name.startswith("version_"):
        return int(run_dir.name.removeprefix("version_"))
    return None


class LinearCLI(LightningCLI):
    """LightningCLI for linear_pl: the nested keys (--model.lr) plus flat aliases (--lr) and presets."""

    def __init__(self, args: list[str] | None = None, **kwargs) -> None:
        super().__init__(
            RegressionModel,
            SyntheticDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            run=False,
            args=args,
            parser_class=OneLineErrorParser,
            trainer_defaults=TRAINER_DEFAULTS,
            auto_configure_optimizers=False,  # the model configures SGD itself
            save_config_kwargs={"overwrite": True},
            **kwargs,
        )

    def parse_arguments(self, parser: LightningArgumentParser, args: list[str] | None) -> None:
        args = sys.argv[1:] if args is None else list(args)
        self.config = parser.parse_args(expand_names(expand_presets(args)))
        check_trainer_flags(self.config.trainer)
        self.root = Path(self.config.trainer.default_root_dir or ".")
        self.ckpt_path = resolve_checkpoint(self.config.ckpt_path, self.root)
        self.checkpoint = None if self.ckpt_path is None else load_checkpoint_safely(self.ckpt_path)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.set_defaults(
            {"model": {"class_path": MODEL_NAMES["linear"]}, "data": {"class_path": DATA_NAMES["synthetic"]}}
        )
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
            "--log_every_n_epochs", type=int, default=10, help="print, log to TensorBoard, validate every N epochs"
        )
        parser.add_argument(
            "--ckpt_path", type=str | None, default=None, help="resume from this checkpoint, or 'last': the newest run"
        )
        parser.add_argument(
            "--lr_find", type=bool, default=False, nargs="?", const=True,
            help="run Lightning's learning-rate finder first, print its suggestion and the stable limit, train with it",
        )  # fmt: skip
        parser.add_argument(
            "--checkpoint_every_seconds",
            type=float,
            default=5.0,
            help="refresh last.ckpt after an epoch at most this often",
        )
        presets = ", ".join(sorted(p.stem for p in PRESETS_DIR.glob("*.yaml")))
        parser.add_argument("--preset", type=str | None, default=None, help=f"a shipped config: {presets}")
        # The model's size follows from the data; the data's seed also seeds the initial weights.
        parser.link_arguments("data.init_args.true_weights", "model.init_args.num_features", compute_fn=len)
        parser.link_arguments("data.init_args.seed", "seed_everything")
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
        self.convergence = StopWhenConverged()
        checkpoint = LastCheckpoint(self.config.checkpoint_every_seconds)
        callbacks = [self.progress, self.convergence, LearningRateGuard(), checkpoint]
        kwargs["callbacks"] = (config.callbacks or []) + callbacks
        kwargs["plugins"] = [AtomicCheckpointIO()]
        return super().instantiate_trainer(**kwargs)


def find_learning_rate(trainer: Trainer, model: RegressionModel, datamodule: SyntheticDataModule) -> None:
    """Lightning's Tuner.lr_find, on a throwaway Trainer so the run's callbacks and logs stay clean."""
    with tempfile.TemporaryDirectory() as scratch:
        finder_trainer = Trainer(
            accelerator=trainer.accelerator, devices=1, default_root_dir=scratch, logger=False, max_epochs=-1,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        )  # fmt: skip
        finder = Tuner(finder_trainer).lr_find(model, datamodule=datamodule, min_lr=1e-9, update_attr=False)
    suggestion, limit = finder.suggestion(), model.stable_lr
    # The finder's pick comes from a noisy loss curve; never train above the stability limit.
    chosen = min(suggestion, SAFETY_FACTOR * limit) if suggestion else SAFETY_FACTOR * limit
    if trainer.is_global_zero:
        print(
            f"lr_find suggests {suggestion:.3g}; the stable limit from the data is {limit:.3g} "
            f"(--lr auto: {SAFETY_FACTOR * limit:.3g}); training with lr {chosen:.3g}",
            flush=True,
        )
    model.lr = chosen


def cli_main(args: list[str] | None = None) -> int:
    """Train from the command line; returns the exit status."""
    silence_known_noise()
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
    if cli.config.lr_find:
        find_learning_rate(trainer, model, datamodule)

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
    converged = cli.convergence.converged(trainer)
    if diverged is None and cli.progress.last_reported_epoch != trainer.current_epoch:
        # Stopped between report epochs (converged): validate the final weights, so the last line,
        # TensorBoard and results.json all describe them.
        trainer.validate(model, datamodule, verbose=False)
        metrics.update(trainer.callback_metrics)
        cli.progress.report(trainer, model, trainer.current_epoch, metrics)
    if trainer.is_global_zero:  # every rank holds the same weights; one report is enough
        results = summarize(
            trainer, model, datamodule, cli.progress, metrics, fit_seconds, converged, diverged is not None, spread
        )
        if diverged is None:
            print(format_table(results))
        write_results(results, run_dir, trainer, model)
    if diverged is not None:
        if trainer.is_global_zero:
            last = run_dir / "checkpoints" / "last.ckpt"
            kept = f"last good checkpoint kept: {last}" if last.exists() else "no checkpoint had been written yet"
            print(f"error: {diverged}; {kept}", file=sys.stderr)
        return 1
    return 0
