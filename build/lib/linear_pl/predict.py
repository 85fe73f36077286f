"""Use a trained model: predictions for rows of x, through the same LightningModule on any accelerator."""

import argparse
import math
import sys
from pathlib import Path

import lightning as L
import torch
import yaml
from torch.utils.data import DataLoader

from linear_pl.checkpointing import load_checkpoint_safely, resolve_checkpoint
from linear_pl.data import EVAL_BATCH_SIZE
from linear_pl.errors import UsageError, check_accelerator, silence_known_noise
from linear_pl.internals import CLASS_PATH_KEY
from linear_pl.model import RegressionModel


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The predict command's flags."""
    parser = _Parser(prog="predict.py", description=__doc__)
    parser.add_argument("--ckpt_path", required=True, help="last or best (of the newest run), or a checkpoint's path")
    parser.add_argument("--default_root_dir", default=".", help="where to look for last and best (default: .)")
    inputs = parser.add_mutually_exclusive_group(required=True)
    inputs.add_argument("--x", help='one row "[1, 1, 1]" or several "[[1, 1, 1], [2, 0, 1]]"')
    inputs.add_argument("--input", help="a CSV file of rows, or - for stdin")
    parser.add_argument("--output", help="also write the predictions to this CSV file, one per line")
    parser.add_argument("--accelerator", default="auto", help="cpu, gpu, cuda, mps or auto")
    return parser


def read_rows(args: argparse.Namespace) -> tuple[str, list]:
    """The input rows as nested Python lists, and the flag they came from (for error messages)."""
    if args.x is not None:
        try:
            rows = yaml.safe_load(args.x)
        except yaml.YAMLError:
            rows = None
        rows = [rows] if isinstance(rows, list) and not any(isinstance(r, list) for r in rows) else rows
        return "--x", rows if isinstance(rows, list) else [[args.x]]
    if args.input == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(args.input).read_text()
        except OSError as error:
            raise UsageError(f"--input {args.input}: cannot read it ({error.strerror})") from None
    return f"--input {args.input}", [line.split(",") for line in text.splitlines() if line.strip()]


def to_tensor(source: str, rows: list, num_features: int) -> torch.Tensor:
    """Check every row is num_features finite numbers; one clear message for the first that is not."""
    expected = f"expected rows of {num_features} finite numbers (shape [N, {num_features}])"
    if not rows:
        raise UsageError(f"{source}: no rows; {expected}")
    values = []
    for i, row in enumerate(rows, start=1):
        if not isinstance(row, list) or len(row) != num_features:
            raise UsageError(f"{source}: row {i} has {len(row) if isinstance(row, list) else 1} values; {expected}")
        try:
            numbers = [float(v) for v in row if not isinstance(v, bool)]
        except (TypeError, ValueError):
            numbers = []
        if len(numbers) != num_features or not all(math.isfinite(v) for v in numbers):
            raise UsageError(f"{source}: row {i} is {row}; {expected}")
        values.append(numbers)
    return torch.tensor(values, dtype=torch.float32)


def _subclasses(cls: type) -> list[type]:
    return [c for sub in cls.__subclasses__() for c in (sub, *_subclasses(sub))]


def model_from_checkpoint(path: Path, checkpoint: dict) -> RegressionModel:
    """The model a checkpoint holds, built from its hyperparameters and weights.

    The class comes from the class path LightningCLI saves (``CLASS_PATH_KEY``), and must be an already imported
    subclass of RegressionModel: a checkpoint never makes us import code. (Lightning's own
    ``RegressionModel.load_from_checkpoint`` drops that key when the base class is asked for, and
    would read the file again.)
    """
    hparams = checkpoint.get("hyper_parameters", {})
    class_path = hparams.get(CLASS_PATH_KEY, "linear_pl.model.LinearModel")
    module, _, name = class_path.rpartition(".")
    # jsonargparse saves the shortest import path: linear_pl.LinearModel for linear_pl.model.LinearModel.
    known = [c for c in _subclasses(RegressionModel) if c.__qualname__ == name and c.__module__.startswith(module)]
    if not known:
        raise UsageError(f"--ckpt_path {path}: its model class {class_path} is not a known linear_pl model")
    try:
        model = known[0](**{k: v for k, v in hparams.items() if not k.startswith("_")})
        model.load_state_dict(checkpoint["state_dict"])
    except Exception as error:
        raise UsageError(f"--ckpt_path {path}: not a usable {class_path} checkpoint ({error})") from None
    return model.eval()


def predict_main(argv: list[str] | None = None) -> int:
    """Print (and optionally write) one prediction per input row; returns the exit status."""
    silence_known_noise()
    try:
        args = build_parser().parse_args(argv)
        check_accelerator(args.accelerator)
        path = resolve_checkpoint(args.ckpt_path, Path(args.default_root_dir))
        checkpoint = load_checkpoint_safely(path)  # refuses unsafe or broken files with a clear line
        model = model_from_checkpoint(path, checkpoint)
        x = to_tensor(*read_rows(args), model.hparams.num_features)
    except UsageError as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2

    trainer = L.Trainer(
        accelerator=args.accelerator, devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    batches = trainer.predict(model, DataLoader(list(x.split(EVAL_BATCH_SIZE)), batch_size=None))
    predictions = torch.cat(batches).tolist()
    lines = [f"{p:.8g}" for p in predictions]
    print("\n".join(lines))
    if args.output:
        Path(args.output).write_text("\n".join(lines) + "\n")
    return 0
