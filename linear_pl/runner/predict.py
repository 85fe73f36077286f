"""Use a trained model: its predictions, through the same LightningModule on any accelerator.

``--x`` or ``--input`` gives rows of numbers, for a model that takes them (the regression example);
``--data CLASS`` predicts over that data module's ``predict_dataloader``, for any model. The model's
own ``predict_step`` decides what a prediction is: for a classifier, the class.
"""

import math
import os
import sys
from pathlib import Path

import lightning as L
import torch
import yaml
from jsonargparse import Namespace
from torch.utils.data import DataLoader

from linear_pl.runner.checkpointing import load_checkpoint_safely, resolve_checkpoint
from linear_pl.runner.errors import OneLineErrorParser, UsageError, check_accelerator, silence_known_noise
from linear_pl.runner.flags import chosen_class_path, expand_names, import_class
from linear_pl.runner.internals import CLASS_PATH_KEY

# Rows are predicted this many at a time.
ROWS_PER_BATCH = 4096


def build_parser(data_class_path: str | None = None) -> OneLineErrorParser:
    """The predict command's flags; ``--data`` defaults to the class the arguments name (if any)."""
    parser = OneLineErrorParser(prog="predict.py", description=__doc__)
    parser.add_argument(
        "--ckpt_path", type=str, required=True, help="last or best (of the newest run that has one), or a path"
    )
    parser.add_argument("--default_root_dir", type=str, default=".", help="where to look for last and best")
    parser.add_argument(
        "--x", type=str | None, default=None, help='one row "[1, 1, 1]" or several "[[1, 1, 1], [2, 0, 1]]"'
    )
    parser.add_argument("--input", type=str | None, default=None, help="a CSV file of rows, or - for stdin")
    parser.add_subclass_arguments(
        L.LightningDataModule, "data", required=False, help="predict over its predict_dataloader"
    )
    if data_class_path is not None:
        parser.set_defaults({"data": {"class_path": data_class_path}})
    parser.add_argument("--output", type=str | None, default=None, help="also write the predictions to this file")
    parser.add_argument("--accelerator", type=str, default="auto", help="cpu, gpu, cuda, mps or auto")
    return parser


def read_rows(args: Namespace) -> tuple[str, list]:
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


def to_tensor(source: str, rows: list, num_features: int | None) -> torch.Tensor:
    """Check every row is num_features finite numbers (as many as the first row's, for a model that does
    not say); one clear message for the first that is not."""
    if num_features is None:
        num_features = len(rows[0]) if rows and isinstance(rows[0], list) else 1
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


def model_from_checkpoint(path: Path, checkpoint: dict) -> L.LightningModule:
    """The model a checkpoint holds, rebuilt from its class path, hyperparameters and weights.

    The class path is the one LightningCLI saves (``CLASS_PATH_KEY``); it is imported like any
    ``--model`` class, and must name a LightningModule. The weights come from torch's safe loader.
    """
    hparams = checkpoint.get("hyper_parameters", {})
    class_path = hparams.get(CLASS_PATH_KEY, "linear_pl.regression.model.LinearModel")
    try:
        cls = import_class(class_path, "model", L.LightningModule)
    except UsageError as error:
        raise UsageError(f"--ckpt_path {path}: its model class {str(error).removeprefix('--model ')}") from None
    try:
        model = cls(**{k: v for k, v in hparams.items() if not k.startswith("_")})
        model.load_state_dict(checkpoint["state_dict"])
    except Exception as error:
        raise UsageError(f"--ckpt_path {path}: not a usable {class_path} checkpoint ({error})") from None
    return model.eval()


def _lines(batches: list) -> list[str]:
    """One line per sample: a number, or a sample's numbers separated by commas."""
    lines = []
    for batch in batches:
        for value in torch.as_tensor(batch).cpu().tolist():
            values = value if isinstance(value, list) else [value]
            lines.append(", ".join(f"{v:.8g}" if isinstance(v, float) else str(v) for v in values))
    return lines


def predict_main(argv: list[str] | None = None) -> int:
    """Print (and optionally write) one prediction per input row or sample; returns the exit status."""
    silence_known_noise()
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # a checkpoint's mymodule.MyModel is found here, as for train.py
    argv = expand_names(sys.argv[1:] if argv is None else list(argv))
    try:
        data_path = chosen_class_path(argv, "data", "")
        args = build_parser(data_path or None).parse_args(argv)
        given = [flag for flag, value in (("--x", args.x), ("--input", args.input), ("--data", args.data)) if value]
        if len(given) != 1:
            raise UsageError(f"give one of --x, --input or --data (given: {', '.join(given) or 'none'})")
        check_accelerator(args.accelerator)
        path = resolve_checkpoint(args.ckpt_path, Path(args.default_root_dir))
        checkpoint = load_checkpoint_safely(path)  # refuses unsafe or broken files with a clear line
        model = model_from_checkpoint(path, checkpoint)
        inputs = _inputs(args, model)
    except UsageError as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2

    trainer = L.Trainer(
        accelerator=args.accelerator, devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    if isinstance(inputs, L.LightningDataModule):
        batches = trainer.predict(model, datamodule=inputs)
    else:
        batches = trainer.predict(model, DataLoader(list(inputs.split(ROWS_PER_BATCH)), batch_size=None))
    lines = _lines(batches)
    print("\n".join(lines))
    if args.output:
        Path(args.output).write_text("\n".join(lines) + "\n")
    return 0


def _inputs(args: Namespace, model: L.LightningModule) -> torch.Tensor | L.LightningDataModule:
    """The rows as a tensor (checked against the model's num_features, where it has one), or the data module."""
    if args.data:
        cls = import_class(args.data.class_path, "data", L.LightningDataModule)
        try:
            return cls(**args.data.init_args)
        except Exception as error:
            raise UsageError(f"--data {args.data.class_path}: {error}") from None
    source, rows = read_rows(args)
    return to_tensor(source, rows, model.hparams.get("num_features"))
