"""What a project tells the run machinery about itself: its default model and data, their short names,
its presets and its own defaults. The runner knows no model; a project registers one :class:`Project`.

The project registers it in ``registry.py`` beside ``runner/`` (``PROJECT = Project(...)``). Without that
file the runner has Lightning's own defaults, and ``--model`` and ``--data`` must be given.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path

DESCRIPTION = """\
Train any LightningModule on any LightningDataModule. --model and --data take a class path (or a short
name the project registers); every argument of the chosen classes is a flag (--hidden_size, same as
--model.hidden_size), and every Trainer argument is --trainer.NAME. --monitor NAME --mode min|max: what
best.ckpt and early stopping follow. `validate|test|predict --ckpt_path best|last|PATH` rebuild the
checkpoint's run."""


def class_path(cls: type) -> str:
    """How a class is named in a project's registry, on the command line and in a config: ``package.module.Class``."""
    return f"{cls.__module__}.{cls.__qualname__}"


@dataclass(frozen=True)
class Project:
    """A project's defaults for the command line. Every field is optional."""

    model: str | None = None  # the default --model class path
    data: str | None = None  # the default --data class path
    model_names: Mapping[str, str] = field(default_factory=dict)  # --model NAME -> class path
    data_names: Mapping[str, str] = field(default_factory=dict)  # --data NAME -> class path
    presets: Path | None = None  # a folder of NAME.yaml configs, for --preset NAME
    description: str = DESCRIPTION
    # The project's own run, for its own model only: any other model gets Lightning's defaults.
    trainer_defaults: Mapping[str, object] = field(default_factory=dict)  # over Lightning's own
    model_defaults: Mapping[str, object] = field(default_factory=dict)  # init args, for the command only
    log_every_n_epochs: int = 1  # print a progress line, and validate, every N epochs
    silence: Callable[[], None] | None = None  # warning filters for the project's own data only

    def owns(self, group: str, cls: type | None) -> bool:
        """Whether the class is one this project registers (its default, or a short name's), by whatever path
        it was named (a module may be importable under an older name too)."""
        names = self.model_names if group == "model" else self.data_names
        return cls is not None and class_path(cls) in {getattr(self, group), *names.values()}

    def for_model(self, cls: type) -> "Project":
        """This project's settings for its own models; for any other, Lightning's defaults (with the names and
        presets)."""
        if self.owns("model", cls):
            return self
        return Project(model_names=self.model_names, data_names=self.data_names, presets=self.presets)

    def preset_names(self) -> list[str]:
        return sorted(p.stem for p in self.presets.glob("*.yaml")) if self.presets else []


def registered_project() -> Project:
    """The project this runner sits in, as its ``registry.PROJECT`` registers it, or Lightning's defaults."""
    name = f"{__name__.split('.')[0]}.registry"
    try:
        module = import_module(name)
    except ModuleNotFoundError as error:
        if error.name != name:
            raise  # the registry is there, and imports something missing: the project's bug, shown whole
        return Project()
    return module.PROJECT
