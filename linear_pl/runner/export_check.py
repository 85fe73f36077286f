"""The checks of an export: each format's outputs against the eager model's at several batch sizes, the batch
dimension still dynamic, and the model's own test metric computed through each format."""

from collections.abc import Callable
from pathlib import Path

import torch

from linear_pl.runner.errors import UsageError

# The exported batch dimension, by name: the .onnx file's input names it too.
BATCH = torch.export.Dim("batch")
# Besides 1, 2 and the loader's own batch size: an odd size, which a constant batch of 2 or 4 would not pass.
ODD_BATCH = 7


class Mismatch(Exception):
    """A format's output is outside the tolerance at a batch size: exit 1, nothing written."""


def batch_sizes(loader_batch: int) -> list[int]:
    return sorted({1, 2, ODD_BATCH, loader_batch})


def check_stays_dynamic(program: torch.export.ExportedProgram, inputs: dict[int, torch.Tensor]) -> None:
    """torch.export may turn the batch dimension into a constant (an example batch of size 0 or 1 does:
    pytorch #151582, #157621): the program's input must keep a symbolic first dimension, whose range holds
    1, and run at every size checked (exit 2: the model cannot be exported with a batch of any size)."""
    (name,) = program.graph_signature.user_inputs
    node = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name == name)
    first = node.meta["val"].shape[0]
    if not isinstance(first, torch.SymInt):
        raise UsageError(f"model.pt2: the batch dimension became the constant {first}: the program takes no other")
    bounds = program.range_constraints.get(first.node.expr)
    if bounds is not None and bounds.lower > 1:
        raise UsageError(f"model.pt2: the batch dimension starts at {bounds.lower}: the program takes no batch of 1")
    module = program.module()
    with torch.no_grad():
        for n, x in inputs.items():
            try:
                module(x)
            except Exception as error:
                line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise UsageError(f"model.pt2 at batch {n}: the program refuses it ({line}): its batch dimension is not "
                                 "dynamic") from None  # fmt: skip


def outputs_of(value) -> list[torch.Tensor]:
    """A forward's output as a list of tensors: one tensor, or a tuple or list of them."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, tuple | list):
        return [t for v in value for t in outputs_of(v)]
    raise UsageError(f"the model's forward returns {type(value).__name__}; export checks tensors or tuples of them")


def check_format(
    name: str, runner: Callable, inputs: dict[int, torch.Tensor], eager: dict[int, object], config
) -> dict[str, dict[str, float]]:
    """The max absolute and relative difference from the eager outputs at each batch size; Mismatch where one
    is outside ``|got - eager| <= atol + rtol * |eager|`` (torch.allclose's test; NaN fails it)."""
    diffs = {}
    for n, x in inputs.items():
        got, want = outputs_of(runner(x)), outputs_of(eager[n])
        worst_abs = worst_rel = 0.0
        for g, w in zip(got, want, strict=True):
            if g.shape != w.shape:
                raise Mismatch(f"{name} at batch {n}: output shape {list(g.shape)}, eager's {list(w.shape)}")
            w = w if w.is_floating_point() else w.float()
            diff = (g.to(w) - w).abs()
            if not bool((diff <= config.atol + config.rtol * w.abs()).all()):
                raise Mismatch(
                    f"{name} at batch {n}: max abs diff {diff.max().item():.2g} exceeds atol {config.atol:g} "
                    f"+ rtol {config.rtol:g} * |eager|"
                )
            worst_abs = max(worst_abs, diff.max().item())
            worst_rel = max(worst_rel, (diff / w.abs().clamp_min(torch.finfo(w.dtype).tiny)).max().item())
        diffs[str(n)] = {"abs": worst_abs, "rel": worst_rel}
    return diffs


def onnx_runner(path: Path, device: torch.device, on_device: bool = False) -> Callable:
    """The .onnx file in ONNX Runtime, as a function of a tensor on ``device``: on its CPU provider (the export's
    check), or with ``on_device`` on CUDA's where the device is a GPU and ONNX Runtime has it (serve)."""
    import onnxruntime  # noqa: PLC0415 -- the export extra, imported by an export only

    cuda = on_device and device.type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: ORT warns about the initializers it folds away
    providers = ["CUDAExecutionProvider"] * cuda + ["CPUExecutionProvider"]
    session = onnxruntime.InferenceSession(str(path), options, providers=providers)
    (given,) = session.get_inputs()

    def run(x: torch.Tensor):
        outputs = [torch.from_numpy(o).to(device) for o in session.run(None, {given.name: x.detach().cpu().numpy()})]
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    return run


def metrics_through(run, split: str, runner: Callable | None) -> dict[str, float] | None:
    """The model's own test (or validation) step over its split, run by the Trainer, with the model's forward
    replaced by ``runner`` (None: the eager model's): its logged metrics. None for ``--x``/``--input`` rows,
    which have no labels."""
    if split == "rows":
        return None
    model = run.model
    if runner is not None:
        # The instance's forward, what self(x) in the model's steps calls; a function, not the loaded program
        # itself, which would become a submodule (and refuses the Trainer's model.eval()).
        model.forward = lambda x: runner(x)
    try:
        method = run.trainer.test if split == "test" else run.trainer.validate
        (metrics,) = method(model, run.datamodule, verbose=False)
    finally:
        if runner is not None:
            del model.forward
    return {name: float(value) for name, value in sorted(metrics.items())}
