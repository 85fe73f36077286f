"""Bad input and library noise: one clear line for the first, silence for the second (nothing else)."""

import logging
import re
import sysconfig
import traceback
import warnings
from pathlib import Path

import lightning
from jsonargparse import Namespace
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.accelerators import AcceleratorRegistry
from lightning.pytorch.cli import LightningArgumentParser

from linear_pl.runner.internals import KNOWN_NOISE, one_line
from linear_pl.runner.usage import OneLineArgumentParser, UsageError  # noqa: F401 -- here too; usage.py says why

# Lightning's own Trainer arguments that every run has as flat flags: --max_epochs is --trainer.max_epochs.
TRAINER_FLAGS = ("accelerator", "devices", "strategy", "num_nodes", "precision", "max_epochs", "default_root_dir")


class RunFilesError(OSError):
    """A file the run writes (a checkpoint, results.json) could not be written: a full disk, a lost mount."""

    @classmethod
    def of(cls, error: OSError) -> "RunFilesError":
        return cls(error.errno, error.strerror or str(error), error.filename)


class OneLineErrorParser(LightningArgumentParser):
    """jsonargparse prints the usage and a multi-line message; we print the message on one line."""

    def error(self, message: str, ex: Exception | None = None) -> None:
        if not self.exit_on_error:
            return super().error(message, ex)
        line = one_line(message)
        # --seed is the command's name for LightningCLI's seed_everything.
        seed = re.match(r'Parser key "seed_everything": .*Got value: (.*)', line)
        raise UsageError(f"--seed {seed[1]}: must be an integer" if seed else line)


def root_cause(error: BaseException) -> BaseException:
    """What was raised first, under any wrapping (jsonargparse wraps what a link or a constructor raised)."""
    while error.__cause__ is not None:
        error = error.__cause__
    return error


def what_was_rejected(error: BaseException) -> str:
    """A library's rejection of a flag, as one line: the reason at the bottom of any wrapping, led by
    the flag where Lightning names a Trainer argument (``Trainer(devices='0')``)."""
    error = root_cause(error)
    message = one_line(str(error)) or type(error).__name__
    argument = re.search(r"Trainer\((\w+)=([^)]*)\)", message)
    if argument:
        flag = argument[1] if argument[1] in TRAINER_FLAGS else f"trainer.{argument[1]}"
        message = f"--{flag} {argument[2].strip(chr(39))}: {message}"
    return message


def _not_a_tip(record: logging.LogRecord) -> bool:
    return not KNOWN_NOISE.match(record.getMessage())


def silence_known_noise() -> None:
    """Drop the specific messages Lightning 2.6 with torch 2.13 prints on every run; nothing else."""
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
    # Under DDP, Lightning's all_gather (the weights' spread across ranks) calls a torch API deprecated in 2.13.
    all_gather = r"torch\.distributed\.nn\.functional\.all_gather is deprecated"
    warnings.filterwarnings("ignore", message=all_gather, category=FutureWarning)
    # Lightning 2.6's own calls into jsonargparse APIs deprecated in 4.49 (not ours to change).
    # (jsonargparse's JsonargparseDeprecationWarning is a DeprecationWarning; its class is private.)
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"lightning\.pytorch\.cli")
    # --optimizer CLASS replaces the model's configure_optimizers: what the user asked for (config.yaml records it).
    warnings.filterwarnings("ignore", message=r"`\w+\.configure_optimizers` will be overridden by")
    # A val_dataloader without a validation_step: the run says so in its own line (monitor.Monitor.choose).
    warnings.filterwarnings("ignore", message=r"You passed in a `val_dataloader` but have no `validation_step`")
    # torch.compile (--compile) imports TorchScript code that uses its own deprecated decorator.
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script_method` is deprecated", category=DeprecationWarning)
    # Under DDP the test set is split by a DistributedSampler, which may repeat a sample to even out the
    # processes' shares: the README says so; Lightning's advice to test on one device is not taken.
    warnings.filterwarnings(
        "ignore", message=r"Using `DistributedSampler` with the dataloaders. During `trainer.test\(\)`"
    )
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.seed"):
        logging.getLogger(name).addFilter(_not_a_tip)  # a set: added once however often this runs


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


def lightning_refused(error: BaseException) -> bool:
    """Whether Lightning refused its configuration once the run started: a Trainer flag it accepted when built
    but cannot honour for this model or data (automatic gradient clipping with manual optimization, a
    ``val_check_interval`` beyond the epoch's batches). Bad input."""
    cause = root_cause(error)
    if isinstance(cause, MisconfigurationException):
        return not raised_in_user_code(error)
    # Lightning's own check of a value (a ValueError raised in its code), not a ValueError of the user's code.
    frames = traceback.extract_tb(cause.__traceback__)
    return isinstance(cause, ValueError) and bool(frames) and _in_lightning(frames[-1].filename)


def _in_lightning(filename: str) -> bool:
    return Path(filename).resolve().is_relative_to(Path(lightning.__file__).resolve().parent)


def _library_paths() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple(str(Path(paths[key]).resolve()) for key in ("stdlib", "platstdlib", "purelib", "platlib"))


def raised_in_user_code(error: BaseException) -> bool:
    """Whether an exception comes from the user's code (their model, data, steps), not the run's or a library's.

    The innermost frame of the traceback that is not a library's decides: the runner's own files mean ours
    (a checkpoint that could not be written), anything else the user's (their setup() opening a missing file).
    """
    error = root_cause(error)
    libraries, runner = _library_paths(), str(Path(__file__).resolve().parent)
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        filename = str(Path(frame.filename).resolve())
        if filename.startswith(libraries) or frame.filename.startswith("<"):
            continue
        return not filename.startswith(runner)
    return False
