"""The command line: LightningCLI with flat everyday flags, presets, and a report at the end."""

import logging
import sys
import time
import warnings
from pathlib import Path

from jsonargparse._deprecated import JsonargparseDeprecationWarning
from lightning.pytorch import Trainer
from lightning.pytorch.accelerators import CUDAAccelerator, MPSAccelerator
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger

from linear_pl.callbacks import StopWhenConverged
from linear_pl.checkpointing import AtomicCheckpointIO, LastCheckpoint
from linear_pl.data import SyntheticDataModule
from linear_pl.model import LinearModel
from linear_pl.report import ProgressReport, format_table, summarize, write_results

PRESETS_DIR = Path(__file__).parent / "presets"

# Flat flags for everyday use, each an alias of the nested key of the same name: --lr is --model.lr.
FLAT_FLAGS = {
    "trainer": ["accelerator", "devices", "strategy", "num_nodes", "precision", "max_epochs", "default_root_dir"],
    "model": ["lr", "momentum", "lr_scheduler", "step_size", "gamma", "bias"],
    "data": [
        "batch_size", "num_samples", "num_val_samples", "true_weights", "true_bias",
        "low", "high", "noise_std", "shuffle", "seed",
    ],  # fmt: skip
}
BOOLEAN_FLAGS = {"bias", "shuffle"}

TRAINER_DEFAULTS = {
    "max_epochs": 3000,  # an upper bound: runs stop once converged (StopWhenConverged)
    "enable_progress_bar": False,  # ProgressReport prints plain lines instead
    "enable_model_summary": False,
    "log_every_n_steps": 1,  # nothing is logged per step; this only quiets a warning on short epochs
}


class UsageError(Exception):
    """Bad input: reported as one line on stderr, exit status 2."""


class OneLineErrorParser(LightningArgumentParser):
    """jsonargparse prints the usage and a multi-line message; we print the message on one line."""

    def error(self, message: str, ex: Exception | None = None) -> None:
        if not self.exit_on_error:
            return super().error(message, ex)
        raise UsageError(" ".join(message.split()))


def _not_a_tip(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("💡 Tip")


def silence_known_noise() -> None:
    """Drop the specific messages Lightning 2.6 with torch 2.13 prints on every run; nothing else."""
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
    # Lightning 2.6's own calls into jsonargparse APIs deprecated in 4.49 (not ours to change).
    warnings.filterwarnings("ignore", category=JsonargparseDeprecationWarning, module=r"lightning\.pytorch\.cli")
    # Data lives in tensors on the device: worker processes would only add copies.
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_not_a_tip)  # added once


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
    """Fail in one line, before anything starts, when the asked-for device does not exist here."""
    available = {"cuda": CUDAAccelerator.is_available(), "mps": MPSAccelerator.is_available()}
    have = "cpu" + "".join(f", {k}" for k, ok in available.items() if ok)
    if name == "gpu" and not any(available.values()) or name in available and not available[name]:
        raise UsageError(f"--accelerator {name}: no GPU is available on this machine (available: {have})")


class LinearCLI(LightningCLI):
    """LightningCLI for linear_pl: the nested keys (--model.lr) plus flat aliases (--lr) and presets."""

    def __init__(self, args: list[str] | None = None, **kwargs) -> None:
        super().__init__(
            LinearModel,
            SyntheticDataModule,
            run=False,
            args=args,
            parser_class=OneLineErrorParser,
            trainer_defaults=TRAINER_DEFAULTS,
            auto_configure_optimizers=False,  # the model configures SGD itself
            save_config_kwargs={"overwrite": True},
            **kwargs,
        )

    def parse_arguments(self, parser: LightningArgumentParser, args: list[str] | None) -> None:
        self.config = parser.parse_args(expand_presets(sys.argv[1:] if args is None else list(args)))
        check_accelerator(self.config.trainer.accelerator)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for group, names in FLAT_FLAGS.items():
            for name in names:
                dest = f"{group}.{name}"
                # The flat flag's default must equal the nested one, or it would overwrite it.
                extra = {"nargs": "?", "const": True} if name in BOOLEAN_FLAGS else {}
                parser.add_argument(f"--{name}", dest=dest, default=parser.get_default(dest), help=f"alias of --{dest}", **extra)
        parser.add_argument("--log_every_n_epochs", type=int, default=10, help="print, log weights and validate every N epochs")
        parser.add_argument("--ckpt_path", type=str | None, default=None, help="checkpoint to resume training from")
        parser.add_argument("--preset", type=str | None, default=None, help="a shipped config: seed-4w, seed-7w, lntx, lntx-1w")
        # The model's size follows from the data; the data's seed also seeds the initial weights.
        parser.link_arguments("data.true_weights", "model.num_features", compute_fn=len)
        parser.link_arguments("data.seed", "seed_everything")
        parser.link_arguments("log_every_n_epochs", "trainer.check_val_every_n_epoch")

    def instantiate_trainer(self, **kwargs) -> Trainer:
        config = self.config.trainer
        if config.logger in (None, True):
            # Our own TensorBoard logger: default_hp_metric=False, because the hparams get a real
            # metric at the end of the run instead of Lightning's -1 placeholder.
            kwargs["logger"] = TensorBoardLogger(config.default_root_dir or ".", default_hp_metric=False)
        self.progress = ProgressReport(self.config.log_every_n_epochs, self.config.data.true_weights)
        self.convergence = StopWhenConverged()
        callbacks = [self.progress, self.convergence, LastCheckpoint()]
        kwargs["callbacks"] = (config.callbacks or []) + callbacks
        kwargs["plugins"] = [AtomicCheckpointIO()]
        return super().instantiate_trainer(**kwargs)


def cli_main(args: list[str] | None = None) -> int:
    """Train from the command line; returns the exit status."""
    silence_known_noise()
    try:
        cli = LinearCLI(args)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    trainer, model, datamodule = cli.trainer, cli.model, cli.datamodule

    start = time.perf_counter()
    trainer.fit(model, datamodule, ckpt_path=cli.config.ckpt_path)
    fit_seconds = time.perf_counter() - start

    # The final losses and verdict are read before validate() below, which resets the metrics.
    metrics = dict(trainer.callback_metrics)
    converged = cli.convergence.converged(trainer)
    if cli.progress.last_reported_epoch != trainer.current_epoch:
        # Stopped between report epochs (converged): validate the final weights, so the last line,
        # TensorBoard and results.json all describe them.
        trainer.validate(model, datamodule, verbose=False)
        metrics.update(trainer.callback_metrics)
        cli.progress.report(trainer, model, trainer.current_epoch, metrics)
    if trainer.is_global_zero:
        results = summarize(trainer, model, datamodule, cli.progress, metrics, fit_seconds, converged)
        print(format_table(results))
        write_results(results, trainer, model)
    return 0
