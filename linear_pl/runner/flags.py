"""The command's spellings: flat flags, short class names, presets, and which class takes which flag."""

import inspect
from importlib import import_module
from pathlib import Path

import yaml

from linear_pl.runner.errors import UsageError

PRESETS_DIR = Path(__file__).parent.parent / "presets"

# Flat flags for everyday use, each an alias of the nested key of the same name: --lr is --model.lr.
# A model or data flag applies only to the classes that take that argument.
FLAT_FLAGS = {
    "trainer": ["accelerator", "devices", "strategy", "num_nodes", "precision", "max_epochs", "default_root_dir"],
    "model": ["lr", "momentum", "step_size", "gamma", "bias", "precondition", "hidden_sizes", "baseline"],
    "data": [
        "batch_size",
        "num_samples",
        "num_val_samples",
        "true_weights",
        "true_bias",
        "low",
        "high",
        "noise_std",
        "shuffle",
        "target",
    ],
}
# --model and --data take a class path (any LightningModule, any LightningDataModule) or one of these
# short names.
MODEL_NAMES = {"linear": "linear_pl.regression.model.LinearModel", "mlp": "linear_pl.regression.model.MLPModel"}
DATA_NAMES = {
    "synthetic": "linear_pl.regression.data.SyntheticDataModule",
    "csv": "linear_pl.regression.csv_data.CSVDataModule",
}
BOOLEAN_FLAGS = {"bias", "shuffle"}
# --lr_scheduler NAME is RegressionModel's own schedule (--model.lr_scheduler) for these names, and
# LightningCLI's --lr_scheduler CLASS for anything else: both readings of the one flag work.
SCHEDULE_NAMES = ("none", "step", "exponential", "cosine", "plateau")


def expand_names(args: list[str]) -> list[str]:
    """``--model mlp`` becomes ``--model linear_pl.regression.model.MLPModel``; likewise ``--data
    synthetic|csv``, and ``--lr_scheduler step`` (a short name) becomes ``--model.lr_scheduler step``."""
    return _expand_class_names(_expand_schedule_names(args))


def _expand_schedule_names(args: list[str]) -> list[str]:
    expanded, i = [], 0
    while i < len(args):
        arg = args[i]
        if arg == "--lr_scheduler" and i + 1 < len(args) and args[i + 1] in SCHEDULE_NAMES:
            expanded += ["--model.lr_scheduler", args[i + 1]]
            i += 2
            continue
        if arg.startswith("--lr_scheduler=") and arg.partition("=")[2] in SCHEDULE_NAMES:
            arg = "--model.lr_scheduler=" + arg.partition("=")[2]
        expanded.append(arg)
        i += 1
    return expanded


def _expand_class_names(args: list[str]) -> list[str]:
    expanded = list(args)
    for i, arg in enumerate(args):
        for flag, names in (("--model", MODEL_NAMES), ("--data", DATA_NAMES)):
            if arg == flag and i + 1 < len(args):
                at, value = i + 1, args[i + 1]
            elif arg.startswith(f"{flag}="):
                at, value = i, arg.partition("=")[2]
            else:
                continue
            if value in names:
                expanded[at] = names[value] if at > i else f"{flag}={names[value]}"
            elif "." not in value and not value[:1].isupper():  # not a class name or path either
                raise UsageError(f"{flag} {value}: unknown; choose {' or '.join(names)}, or give a class path")
    return expanded


def expand_presets(args: list[str]) -> list[str]:
    """``--preset NAME`` becomes ``--config <shipped NAME.yaml>`` in place, so later flags override it."""
    expanded = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--preset" or arg.startswith("--preset="):
            name = arg.partition("=")[2] if "=" in arg else (args[i + 1] if i + 1 < len(args) else "")
            i += 1 if "=" in arg else 2
            path = PRESETS_DIR / f"{name}.yaml"
            if not path.is_file():
                known = ", ".join(sorted(p.stem for p in PRESETS_DIR.glob("*.yaml")))
                raise UsageError(f"--preset {name!r}: unknown preset; choose one of {known}")
            expanded += ["--preset", name, "--config", str(path)]
            continue
        expanded.append(arg)
        i += 1
    return expanded


def _flag_values(args: list[str], flag: str) -> list[tuple[int, str]]:
    """Where ``flag`` is given (as ``flag value`` or ``flag=value``), and its values, in order."""
    found = []
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            found.append((i, args[i + 1]))
        elif arg.startswith(f"{flag}="):
            found.append((i, arg.partition("=")[2]))
    return found


def _class_in_config(path: str, group: str) -> str | None:
    try:
        entry = (yaml.safe_load(Path(path).read_text()) or {}).get(group)
    except (OSError, yaml.YAMLError, AttributeError):
        return None  # jsonargparse reports a bad config file in its own words
    return entry if isinstance(entry, str) else entry.get("class_path") if isinstance(entry, dict) else None


def without_flag(args: list[str], flag: str) -> list[str]:
    """``args`` without ``flag`` and its value (given as ``flag value`` or ``flag=value``)."""
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == flag:
            skip = True
        elif not arg.startswith(f"{flag}="):
            kept.append(arg)
    return kept


def chosen_class_path(args: list[str], group: str, default: str) -> str:
    """The class ``--model``/``--data`` names in the end: the last one given by a flag or a config file.

    It becomes the parser's default, so that the chosen class starts from its own defaults:
    jsonargparse keeps the previous class's values for arguments of the same name when a new
    class_path is given (by design), which would hand SyntheticDataModule's batch_size 1 to a
    user's data module.
    """
    chosen = {}
    for flag in (f"--{group}", f"--{group}.class_path"):
        chosen.update(_flag_values(args, flag))
    for i, path in _flag_values(args, "--config"):
        if (class_path := _class_in_config(path, group)) is not None:
            chosen[i] = class_path
    return chosen[max(chosen)] if chosen else default


def import_class(class_path: str, group: str, base: type) -> type:
    """The class a class path names; one line if it cannot be imported or is not a ``base``."""
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(import_module(module), name)
    except (ImportError, AttributeError, ValueError) as error:
        raise UsageError(f"--{group} {class_path}: cannot import it ({error})") from None
    if not (inspect.isclass(cls) and issubclass(cls, base)):
        raise UsageError(f"--{group} {class_path}: not a {base.__name__}")
    return cls


def init_parameters(cls: type) -> set[str]:
    """The argument names ``cls(...)`` takes, following ``**kwargs`` passed on to a parent's ``__init__``."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameters = list(inspect.signature(klass.__init__).parameters.values())[1:]
        names |= {p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            break
    return names


def check_flat_flags(args: list[str], group: str, cls: type, class_path: str) -> None:
    """A model or data flag given for a class that takes no such argument: one line naming who does."""
    taken = init_parameters(cls)
    short_names = MODEL_NAMES if group == "model" else DATA_NAMES
    for name in FLAT_FLAGS[group]:
        if name not in taken and (_flag_values(args, f"--{name}") or f"--{name}" in args):
            owners = [short for short, path in short_names.items() if name in _parameters_of(path, group)]
            where = f"--{group} {' or '.join(owners)} only" if owners else "another class"
            raise UsageError(f"--{name}: {class_path} takes no {name}; the flag applies to {where}")


def _parameters_of(class_path: str, group: str) -> set[str]:
    return init_parameters(import_class(class_path, group, object))


def as_flag(message: str, classes: dict[str, type]) -> str:
    """A library message that starts with an argument's name (``lr 0.0: ...``), spelled as its flag."""
    name = message.split(" ", 1)[0]
    for group, cls in classes.items():
        if name in init_parameters(cls):
            flag = f"--{name}" if name in FLAT_FLAGS[group] else f"--{group}.{name}"
            return flag + message[len(name) :]
    return message
