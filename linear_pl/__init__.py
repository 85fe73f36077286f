"""linear_pl: train any LightningModule on any LightningDataModule; the tutorials' regression as its example.

``linear_pl.runner`` is the run machinery (command line, run directory, checkpoints, results,
errors): keep it when you copy the template. ``linear_pl.regression`` is the tutorials' example
(networks, synthetic and CSV data, closed form, conditioning, the weights report): replace it.

Importing the package imports nothing else: the names below load their modules (and Lightning, 4-6 s)
on first use, so a command can refuse a bad flag before it pays for Lightning.
"""

import importlib
import importlib.abc
import importlib.util
import sys
from importlib.machinery import ModuleSpec
from types import ModuleType

_EXPORTS = {
    "DotProduct": "linear_pl.regression.model",
    "LinearModel": "linear_pl.regression.model",
    "MLPModel": "linear_pl.regression.model",
    "SyntheticDataModule": "linear_pl.regression.data",
}
# Where these modules lived before the split: configs and checkpoints written then name their
# classes by these paths (linear_pl.model.LinearModel), and still load.
_OLD_PATHS = {
    "linear_pl.model": "linear_pl.regression.model",
    "linear_pl.data": "linear_pl.regression.data",
    "linear_pl.csv_data": "linear_pl.regression.csv_data",
}


class _OldPaths(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``import linear_pl.model`` gives linear_pl.regression.model itself: one module under both names."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> ModuleSpec | None:
        return importlib.util.spec_from_loader(name, self) if name in _OLD_PATHS else None

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        module = importlib.import_module(_OLD_PATHS[spec.name])
        spec.loader_state = module.__spec__  # the import system sets the alias's spec on it: put it back
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = module.__spec__.loader_state


sys.meta_path.append(_OldPaths())


def __getattr__(name: str) -> object:
    """``linear_pl.DotProduct`` and the others, imported on first use."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if f"linear_pl.{name}" in _OLD_PATHS:
        return importlib.import_module(f"linear_pl.{name}")
    raise AttributeError(f"module 'linear_pl' has no attribute {name!r}")


__all__ = ["DotProduct", "LinearModel", "MLPModel", "SyntheticDataModule"]
