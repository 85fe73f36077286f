"""Bad input and library noise: one clear line for the first, silence for the second (nothing else)."""

import logging
import re
import warnings

from jsonargparse._deprecated import JsonargparseDeprecationWarning
from lightning.pytorch.accelerators import AcceleratorRegistry, CUDAAccelerator, MPSAccelerator
from lightning.pytorch.cli import LightningArgumentParser


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


def check_accelerator(name: object) -> None:
    """Fail in one line, before anything starts, when the accelerator is unknown or absent here."""
    known = ["auto", "cpu", "gpu", *sorted(set(AcceleratorRegistry.available_accelerators()) - {"cpu"})]
    if isinstance(name, str) and name not in known:
        raise UsageError(f"--accelerator {name}: unknown; choose one of {', '.join(known)}")
    available = {"cuda": CUDAAccelerator.is_available(), "mps": MPSAccelerator.is_available()}
    have = "cpu" + "".join(f", {k}" for k, ok in available.items() if ok)
    if name == "gpu" and not any(available.values()) or name in available and not available[name]:
        raise UsageError(f"--accelerator {name}: no GPU is available on this machine (available: {have})")
