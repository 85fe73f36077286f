"""float64 only on the CPU: the example's diagnostics never make a float64 tensor on the accelerator.

Apple's MPS (``--accelerator gpu`` on a Mac) has no float64. The diagnostics run here on ``meta``
tensors, which stand in for any accelerator: each op's outputs are recorded, and what ``meta``
cannot compute (a copy to the host, a Python scalar) is supplied as zeros. The values are then
meaningless; the dtypes and devices are what is checked.
"""

from types import SimpleNamespace

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from linear_pl.regression.closed_form import Moments, linear_fit_loss, stable_lr_of, tensor_batches
from linear_pl.regression.conditioning import Preconditioner
from linear_pl.regression.data_protocol import y_mean_square_of
from linear_pl.regression.networks import MLP

DEVICE = torch.device("meta")


class Float64Watch(TorchDispatchMode):
    """Records every op that makes a float64 tensor off the CPU; lets meta tensors reach the host as zeros."""

    def __init__(self) -> None:
        super().__init__()
        self.offenders: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        source = args[0] if args and isinstance(args[0], torch.Tensor) else None
        on_meta = source is not None and source.device == DEVICE
        if on_meta and func is torch.ops.aten._local_scalar_dense.default:
            return 0.0
        if on_meta and func is torch.ops.aten._to_copy.default and kwargs.get("device") == torch.device("cpu"):
            return torch.zeros(source.shape, dtype=kwargs.get("dtype") or source.dtype)
        out = func(*args, **kwargs)
        for tensor in tree_leaves(out):
            if isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float64 and tensor.device.type != "cpu":
                self.offenders.append(str(func))
        return out


@pytest.mark.parametrize("num_features", [7, 200])  # float64 products (on the host) and float32 ones
def test_the_diagnostics_make_no_float64_tensor_on_the_device(num_features):
    x = torch.empty(300, num_features, device=DEVICE)
    y = torch.empty(300, device=DEVICE)
    watch = Float64Watch()
    with watch:
        moments = Moments.of(tensor_batches(x, y, rows=128))
        diagonal = Moments.of(tensor_batches(x, y, rows=128), full=False)
        moments.least_squares(bias=True)
        conditioner = Preconditioner(num_features, "whiten", centre=True).to(DEVICE)
        conditioner.fit(moments)
        stable_lr_of(tensor_batches(x, y), bias=True, batch_size=4, transform=conditioner)
        linear_fit_loss(tensor_batches(x, y), [1.0] * num_features, 0.5)
        y_mean_square_of(SimpleNamespace(train_x=x, train_y=y))
        MLP(num_features, [4]).to(DEVICE).fit_scaling(diagonal)
    assert watch.offenders == []


def test_the_watch_catches_float64_on_the_device():
    watch = Float64Watch()
    with watch:
        torch.empty(3, device=DEVICE).double()
    assert watch.offenders, "the watch must see a float64 tensor made on the device"
