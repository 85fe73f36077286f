"""``export --ckpt_path best|last|PATH``: the checkpoint's model as files that run without this project, each
checked against the model before it is kept.

In the run's directory, ``export/`` holds ``model.pt2`` (torch.export, an ExportedProgram with a dynamic batch
dimension), ``model.onnx`` (torch.onnx's dynamo exporter, run by ONNX Runtime) and ``export.json`` (versions,
the input, the checkpoint's sha256, each format's differences from the eager model, the metric through each).
The files are written into a temporary directory beside it and renamed into place only once every check
passed: a failed export leaves the previous ``export/`` as it was.

onnx, onnxscript and onnxruntime (the ``export`` extra) are imported here only: a fit never imports them.
"""

import contextlib
import hashlib
import importlib.util
import io
import json
import logging
import re
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from lightning.pytorch.utilities.model_helpers import is_overridden
from torch.utils.data import DataLoader

from linear_pl.runner.errors import UsageError
from linear_pl.runner.export_check import (
    BATCH,
    Mismatch,
    batch_sizes,
    check_format,
    check_stays_dynamic,
    metrics_through,
    onnx_runner,
)
from linear_pl.runner.predict import rows_of

FORMATS = ("model.pt2", "model.onnx")
EXTRA = ("onnx", "onnxscript", "onnxruntime")
# The data's splits an export checks on, in order, by their loaders: the test split's labels give the metric.
SPLITS = (("test", "test_dataloader"), ("validation", "val_dataloader"))


def export(run) -> int:
    """Export ``run.model`` (the checkpoint's), check each format, and move ``export/`` into place; exit status."""
    missing = [name for name in EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(f"export needs {', '.join(missing)}: pip install 'linear_pl[export]'")
    if run.config.rtol < 0 or run.config.atol < 0:
        raise UsageError(f"--rtol {run.config.rtol:g} --atol {run.config.atol:g}: each must be >= 0")
    device = run.trainer.strategy.root_device
    model = run.model.to(device).eval()
    split, loader = input_loader(run)
    pool, loader_batch = input_pool(split, loader, device)
    sizes = batch_sizes(loader_batch)
    inputs = {n: pool[:n] for n in sizes}
    example = pool[: max(2, loader_batch)]  # size 0 or 1 would make the batch dimension a constant
    target = run.checkpoint.parent.parent if run.checkpoint.parent.name == "checkpoints" else run.checkpoint.parent
    final = target / "export"
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=target))
    try:
        program = export_program(model, example)
        check_stays_dynamic(program, inputs)
        torch.export.save(program, staging / "model.pt2")
        opset = export_onnx(program, staging / "model.onnx")
        runners = {"model.pt2": torch.export.load(staging / "model.pt2").module(),
                   "model.onnx": onnx_runner(staging / "model.onnx", device)}  # fmt: skip
        report = describe(run, split, example, opset)
        with torch.no_grad():
            eager = {n: model(x) for n, x in inputs.items()}
            for name, runner in runners.items():
                report["formats"][name] = {"max_diff": check_format(name, runner, inputs, eager, run.config)}
        report["metrics"]["eager"] = metrics_through(run, split, None)
        for name, runner in runners.items():
            report["metrics"][name] = metrics_through(run, split, runner)
        (staging / "export.json").write_text(json.dumps(report, indent=2) + "\n")
        replace_dir(staging, final)
    except Mismatch as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(summary(final, report))
    return 0


def input_loader(run) -> tuple[str, DataLoader]:
    """The loader whose batches the export checks: ``--x``/``--input`` rows where given, else the data's test
    split, else its validation split."""
    rows = rows_of(run.config, run.model)
    if rows is not None:
        return "rows", rows
    data = run.datamodule
    for split, method in SPLITS:
        if data is not None and is_overridden(method, data):
            data.prepare_data()
            data.setup("test" if split == "test" else "validate")
            return split, getattr(data, method)()
    raise UsageError("export needs inputs: the data's test_dataloader or val_dataloader, or --x ROWS / --input FILE")


def input_pool(split: str, loader: DataLoader, device: torch.device) -> tuple[torch.Tensor, int]:
    """Enough model inputs for every batch size checked, from the loader's first batches (repeated where the
    split is smaller), on ``device``; and the loader's own batch size (its first batch's)."""
    pool, loader_batch = [], None
    for batch in loader:
        x = batch[0] if isinstance(batch, tuple | list) and batch else batch
        if not isinstance(x, torch.Tensor) or x.dim() == 0:
            raise UsageError(
                f"export: the {split} loader's batches are {type(batch).__name__}; export supports a tensor batch "
                "or a tuple/list whose first element is the model's input tensor [batch, ...]"
            )
        loader_batch = loader_batch or len(x)
        pool.append(x)
        if sum(map(len, pool)) >= max(batch_sizes(loader_batch)):
            break
    if loader_batch is None:
        raise UsageError(f"export: the {split} loader yields no batches")
    pool = torch.cat(pool)
    repeats = -(-max(batch_sizes(loader_batch)) // len(pool))
    return pool.repeat(repeats, *[1] * (pool.dim() - 1)).to(device), loader_batch


def export_program(model: torch.nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    """torch.export of the model's forward, its first dimension dynamic; what torch refused is one line (exit 2)."""
    with quiet_torch():
        try:
            return torch.export.export(model, (example,), dynamic_shapes=({0: BATCH},))
        except Exception as error:
            if not type(error).__module__.startswith("torch"):
                raise  # the user's forward raised by itself: their bug, with its traceback
            raise UsageError(f"torch.export refused {type(model).__name__}.forward: {refusal(error)}") from None


def export_onnx(program: torch.export.ExportedProgram, path: Path) -> int:
    """The ExportedProgram as ONNX (the dynamo exporter, from the program already made); its opset."""
    with quiet_torch():
        try:
            onnx_program = torch.onnx.export(program, dynamo=True, verbose=False, report=False)
        except Exception as error:
            if not type(error).__module__.startswith(("torch", "onnx")):
                raise
            raise UsageError(f"torch.onnx refused the exported program: {refusal(error)}") from None
    onnx_program.save(path)  # the weights in a file beside it (model.onnx.data) only where over 2 GB
    return next(o.version for o in onnx_program.model_proto.opset_import if o.domain in ("", "ai.onnx"))


def refusal(error: Exception) -> str:
    """The first line of torch's message, and the line of the user's code it names, where it names one."""
    message = str(error).strip()
    if constant := re.search(r"specialized it to be a constant \((\d+)\)", message):
        return f"its batch dimension became the constant {constant[1]}: the program would take no other batch size"
    first = message.splitlines()[0] if message else type(error).__name__
    where = re.search(r'File "([^"]+)", line (\d+), in \w+\n\s*(.+)', message)
    return f"{first} (at {where[1]}:{where[2]}: {where[3].strip()})" if where else first


@contextlib.contextmanager
def quiet_torch():
    """Hold back what torch prints while it exports, and print it afterwards (its loggers' filters drop the known
    noise: noise.py), unless torch refused the model (a UsageError), whose one line says it all. torch.export
    prints the partial graph of a model it refuses to stderr, beside its logged warnings."""
    held: list[logging.LogRecord] = []
    handlers = torch_log_handlers()

    def hold(record: logging.LogRecord) -> bool:
        if record not in held:  # a record may reach more than one handler
            held.append(record)
        return False

    for handler in handlers:
        handler.addFilter(hold)
    stderr = io.StringIO()
    refused = False
    try:
        with contextlib.redirect_stderr(stderr):
            yield
    except UsageError:
        refused = True
        raise
    finally:
        for handler in handlers:
            handler.removeFilter(hold)
        if not refused:
            for record in held:
                logging.getLogger(record.name).handle(record)
            sys.stderr.write(stderr.getvalue())


def torch_log_handlers() -> list[logging.Handler]:
    """The handlers of torch's loggers: torch gives many of its loggers (torch.export's, torch.onnx's, the
    symbolic shapes') a stderr handler of their own, without propagation. The logging module lists its
    loggers in ``Logger.manager.loggerDict`` (undocumented; there is no other list)."""
    loggers = [logging.getLogger(name) for name in list(logging.Logger.manager.loggerDict)
               if name == "torch" or name.startswith("torch.")]  # fmt: skip
    return list({id(h): h for logger in loggers for h in logger.handlers}.values())


def describe(run, split: str, example: torch.Tensor, opset: int) -> dict:
    """export.json, less what the checks add: versions, opset, the input, the checkpoint."""
    import onnx  # noqa: PLC0415 -- the export extra, imported by an export only
    import onnxruntime  # noqa: PLC0415

    # The modules' own: a distribution may be named otherwise (onnxruntime-gpu).
    versions = {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}
    return {
        "versions": versions,
        "opset": opset,
        "input": {"shape": [BATCH.__name__, *example.shape[1:]], "dtype": str(example.dtype).removeprefix("torch.")},
        "checkpoint": {"path": str(run.checkpoint), "sha256": sha256(run.checkpoint)},
        "inputs_from": split,
        "tolerance": {"rtol": run.config.rtol, "atol": run.config.atol},
        "formats": {},
        "metrics": {},
    }


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def replace_dir(staging: Path, final: Path) -> None:
    """Rename the checked files into place; a previous export is moved aside first and removed after."""
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=".export-old-", dir=final.parent))
        final.rename(old / "export")
    staging.rename(final)
    if old is not None:
        shutil.rmtree(old)


def summary(final: Path, report: dict) -> str:
    """A line for the export, one per format: its largest differences over the batch sizes, its metric."""

    def metric(name: str) -> str:
        return "  ".join(f"{k} {v:.6g}" for k, v in (report["metrics"][name] or {}).items())

    sizes = ", ".join(report["formats"][FORMATS[0]]["max_diff"])
    lines = [f"{final}: batches from {report['inputs_from']}, sizes {sizes}"]
    for name in FORMATS:
        diffs = report["formats"][name]["max_diff"].values()
        worst_abs, worst_rel = max(d["abs"] for d in diffs), max(d["rel"] for d in diffs)
        lines.append(f"{name:<10}  max abs diff {worst_abs:.2g}  max rel diff {worst_rel:.2g}  {metric(name)}")
    lines.append(f"{'eager':<10}  {metric('eager')}")
    return "\n".join(line.rstrip() for line in lines)
