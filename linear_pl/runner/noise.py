"""Library noise: the specific warnings and log lines Lightning 2.6 with torch 2.13 prints on every run, dropped
by their wording; nothing else."""

import logging
import re
import warnings

# The messages Lightning logs on every run that are dropped: advertising, and "Seed set to N" (the seed is in
# config.yaml, and the line would precede any error message). Under DDP the other ranks prefix "[rank: N] ".
KNOWN_NOISE = re.compile(r"(\[rank: \d+\] )?(💡 Tip|Seed set to)")


# torch.onnx's exporter (the export command) logs on every export the torchvision operators it skips where
# torchvision is not installed: torchvision's detection models are not this project's.
KNOWN_ONNX_NOISE = re.compile(r"torchvision is not installed\. Skipping torchvision::")
ONNX_REGISTRATION_LOGGER = "torch.onnx._internal.exporter._registration"


def _not_noise(record: logging.LogRecord) -> bool:
    return not KNOWN_NOISE.match(record.getMessage())


def _not_onnx_noise(record: logging.LogRecord) -> bool:
    return not KNOWN_ONNX_NOISE.match(record.getMessage())


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
        logging.getLogger(name).addFilter(_not_noise)  # a set: added once however often this runs
    logging.getLogger(ONNX_REGISTRATION_LOGGER).addFilter(_not_onnx_noise)
