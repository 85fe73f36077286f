"""The command's spellings: which classes the flags choose, their arguments as flat flags, short names, presets.

The parser is LightningCLI's (jsonargparse). Two things it cannot know before it parses are known here
first: which model and data classes are chosen (their arguments become flat flags: ``--hidden_size`` is
``--model.hidden_size``), and where ``--ckpt_path best`` lies (``validate``, ``test`` and ``predict``
rebuild that run from its config.yaml).
"""

import argparse
import inspect
import os
import re
import sys
import typing
from importlib import import_module
from pathlib import Path

import lightning as L
import yaml
from jsonargparse import ActionConfigFile

from linear_pl.runner.errors import UsageError, root_cause
from linear_pl.runner.internals import one_line, option_action
from linear_pl.runner.project import Project, class_path

# Lightning's own Trainer arguments that every run has as flat flags: --max_epochs is --trainer.max_epochs.
TRAINER_FLAGS = ("accelerator", "devices", "strategy", "num_nodes", "precision", "max_epochs", "default_root_dir")


class _InOrder(argparse.Action):
    """Records each value with its flag, in the order given: the last choice of a class wins."""

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.given.append((self.dest, values))


def _pre_parser() -> argparse.ArgumentParser:
    # jsonargparse has no parse_known_args (a typo in a config would go unnoticed); the standard library's
    # reads just these, and jsonargparse then reads everything, these included.
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for flag in ("--model", "--model.class_path", "--data", "--data.class_path", "--config", "-c", "--preset"):
        parser.add_argument(flag, dest=flag.lstrip("-").removesuffix(".class_path"), action=_InOrder)
    for flag in ("--default_root_dir", "--trainer.default_root_dir"):
        parser.add_argument(flag, dest="root")
    parser.add_argument("--ckpt_path")
    return parser


class Choices(typing.NamedTuple):
    """What the command line chooses before it is parsed: the classes, the run's root, the checkpoint's value."""

    model: str | None
    data: str | None
    root: Path
    ckpt_path: str | None


def read_choices(args: list[str], project: Project) -> Choices:
    """The model and data class paths the flags and config files choose (the last one wins), or the project's."""
    known, _ = _pre_parser().parse_known_args(args, argparse.Namespace(given=[]))
    chosen = {"model": project.model, "data": project.data}
    for kind, value in known.given:
        if kind in ("model", "data"):
            chosen[kind] = resolve_short_name(kind, value, project)
            continue
        path = preset_path(value, project) if kind == "preset" else Path(value)
        for group in ("model", "data"):
            if (found := _class_in_config(path, group)) is not None:
                chosen[group] = resolve_short_name(group, found, project)
    return Choices(chosen["model"], chosen["data"], Path(known.root or "."), known.ckpt_path)


def _class_in_config(path: Path, group: str) -> str | None:
    try:
        entry = (yaml.safe_load(path.read_text()) or {}).get(group)
    except (OSError, yaml.YAMLError, AttributeError):
        return None  # jsonargparse reports a bad config file in its own words
    return entry if isinstance(entry, str) else entry.get("class_path") if isinstance(entry, dict) else None


def resolve_short_name(group: str, value: str, project: Project) -> str:
    """A short name the project registered (``--model mlp``), as its class path; a class path or name as given."""
    names = project.model_names if group == "model" else project.data_names
    if value in names:
        return names[value]
    if "." not in value and not value[:1].isupper():  # not a class name or path either
        choose = f"choose {' or '.join(names)}, or give" if names else "give"
        raise UsageError(f"--{group} {value}: unknown; {choose} a class path")
    return value


def preset_path(name: str, project: Project) -> Path:
    path = project.presets / f"{name}.yaml" if project.presets else None
    if path is None or not path.is_file():
        known = ", ".join(project.preset_names()) or "none here"
        raise UsageError(f"--preset {name!r}: unknown preset; choose one of {known}")
    return path


def preset_action(project: Project) -> type[argparse.Action]:
    """``--preset NAME``: the shipped NAME.yaml, read in place as ``--config`` would read it."""

    class Preset(argparse.Action):
        def __call__(self, parser, cfg, values, option_string=None):
            ActionConfigFile.apply_config(parser, cfg, "config", str(preset_path(values, project)))
            cfg[self.dest] = values

    return Preset


def accept_short_names(parser, project: Project) -> None:
    """``--model NAME`` and ``--data NAME`` take the project's short names, on LightningCLI's own actions."""
    for group in ("model", "data"):
        action = option_action(parser, f"--{group}")
        if action is None:
            continue
        spelled = type(action)

        class ShortNames(spelled):
            def __call__(self, parser, cfg, values, option_string=None, group=group):
                if option_string == f"--{group}" and isinstance(values, str):
                    values = resolve_short_name(group, values, project)
                return super().__call__(parser, cfg, values, option_string)

        action.__class__ = ShortNames


def chosen_classes(choices: Choices) -> dict[str, type | None]:
    """The model and data classes the choices name (a model is needed; data may come with the model)."""
    if choices.model is None:  # a project that registers none names its model on every command
        raise UsageError("--model: give the class path of a LightningModule (this project sets no default)")
    model = import_class(choices.model, "model", L.LightningModule)
    return {"model": model, "data": choices.data and import_class(choices.data, "data", L.LightningDataModule)}


def importable_from_cwd() -> None:
    """--data mymodule.MyData finds mymodule.py in the current directory, as ``python -m`` would."""
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())


def import_class(class_path: str, group: str, base: type) -> type:
    """The class a class path names; one line if it cannot be imported or is not a ``base``."""
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(import_module(module), name)
    except ModuleNotFoundError as error:
        if not module.startswith(error.name or "\0"):
            raise  # the module exists and imports something missing: the user's bug, shown whole
        raise UsageError(f"--{group} {class_path}: cannot import it ({error})") from None
    except (AttributeError, ValueError) as error:
        raise UsageError(f"--{group} {class_path}: cannot import it ({error})") from None
    if not (inspect.isclass(cls) and issubclass(cls, base)):
        if inspect.isclass(cls) and any(c.__module__.split(".")[0] == "pytorch_lightning" for c in cls.__mro__):
            raise UsageError(
                f"--{group} {class_path}: a pytorch_lightning {base.__name__}; import it from lightning instead "
                f"(import lightning as L; L.{base.__name__})"
            )
        raise UsageError(f"--{group} {class_path}: not a {base.__name__}")
    return cls


def init_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """The arguments ``cls(...)`` takes, following ``**kwargs`` passed on to a parent's ``__init__``."""
    found: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameters = list(inspect.signature(klass.__init__).parameters.values())[1:]
        for p in parameters:
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                found.setdefault(p.name, p)
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            break
    return found


def registered_arguments(project: Project) -> dict[str, tuple[str, list[str]]]:
    """Each init argument of the project's registered classes: its group and the short names that take it.

    A registered class that cannot be imported is left out: it is not the one chosen (a project whose
    starter was replaced, its registry not yet edited), and only the chosen classes must import."""
    taken: dict[str, tuple[str, list[str]]] = {}
    for group, names in (("model", project.model_names), ("data", project.data_names)):
        base = L.LightningModule if group == "model" else L.LightningDataModule
        for short, path in names.items():
            try:
                cls = import_class(path, group, base)
            except UsageError:
                continue
            for name in init_parameters(cls):
                taken.setdefault(name, (group, []))[1].append(short)
    return taken


def _taken_elsewhere(class_path: str, group: str, owners: list[str]) -> type[argparse.Action]:
    class TakenElsewhere(argparse.Action):
        def __call__(self, parser, cfg, values, option_string=None):
            raise UsageError(
                f"{option_string}: {class_path} takes no {self.dest}; the flag applies to --{group} "
                f"{' or '.join(owners)} only"
            )

    return TakenElsewhere


class _Ambiguous(argparse.Action):
    def __call__(self, parser, cfg, values, option_string=None):
        raise UsageError(f"{option_string}: both --model.{self.dest} and --data.{self.dest} take it; give one of those")


def add_flat_flags(
    parser, classes: dict[str, type | None], linked: set[str], registered: dict[str, tuple[str, list[str]]]
) -> tuple[dict[str, str], dict[str, str]]:
    """Every init argument of the chosen model and data as ``--name``, the same as ``--group.name``.

    Not for arguments the run links (set from another value), nor for names the command already has
    (``--seed``, ``--optimizer``): those keep their meaning and the argument its nested flag. A name both
    classes take is refused in one line; so is an argument of another ``registered`` class, naming it.
    Returns each flat name's group, and each shadowed name's nested flag (``optimizer``: ``--model.optimizer``).
    """
    owners: dict[str, list[str]] = {}
    for group, cls in classes.items():
        for name in init_parameters(cls) if cls else {}:
            if f"{group}.init_args.{name}" not in linked:
                owners.setdefault(name, []).append(group)
    flat, shadowed = {}, {}
    for name, groups in owners.items():
        if (action := option_action(parser, f"--{name}")) is not None:
            if (
                not _share(action, groups, classes) and len(groups) == 1
            ):  # the run's flag: its help names the key that reaches the class's argument
                shadowed[name] = f"--{groups[0]}.{name}"
                action.help = f"{action.help or ''} (not {classes[groups[0]].__name__}'s {name}: {shadowed[name]})"
            continue
        if len(groups) > 1:
            parser.add_argument(f"--{name}", dest=name, action=_Ambiguous, default=argparse.SUPPRESS, help="ambiguous")
            continue
        group = groups[0]
        parameter = init_parameters(classes[group])[name]
        extra = {"nargs": "?", "const": True} if parameter.annotation is bool else {}
        dest = f"{group}.init_args.{name}"
        shown = _flag_help(parameter, parameter_docs(classes[group]).get(name), f"--{group}.{name}")
        metavar = {} if extra else {"metavar": name.upper()}
        parser.add_argument(f"--{name}", dest=dest, default=argparse.SUPPRESS, help=shown, **metavar, **extra)
        flat[name] = group
    for name, (group, owners) in registered.items():
        cls = classes[group]
        if option_action(parser, f"--{name}") is None and cls is not None and name not in init_parameters(cls):
            action = _taken_elsewhere(class_path(cls), group, owners)
            # Not in --help: a flag of a class that was not chosen.
            parser.add_argument(
                f"--{name}", dest=name, action=action, nargs="?", default=argparse.SUPPRESS, help=argparse.SUPPRESS
            )
    return flat, shadowed


def parameter_docs(cls: type) -> dict[str, str]:
    """Each init argument's description in the docstrings of the classes ``init_parameters`` reads (Google,
    NumPy or reST style), where docstring_parser, which jsonargparse reads them with, is installed."""
    try:
        import docstring_parser  # noqa: PLC0415 -- optional, as it is to jsonargparse
    except ImportError:
        return {}
    docs: dict[str, str] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        for doc in (klass.__doc__, klass.__init__.__doc__):
            for param in docstring_parser.parse(doc or "").params:
                docs.setdefault(param.arg_name, " ".join((param.description or "").split()))
        if not any(p.kind == p.VAR_KEYWORD for p in inspect.signature(klass.__init__).parameters.values()):
            break
    return docs


def _flag_help(parameter: inspect.Parameter, doc: str | None, nested: str) -> str:
    """A flat flag's help: its type, its default, its docstring's words, and the nested flag it is."""
    kind = "" if parameter.annotation is parameter.empty else inspect.formatannotation(parameter.annotation)
    default = "required" if parameter.default is parameter.empty else f"default: {parameter.default!r}"
    text = ", ".join(filter(None, [kind, default]))
    text += f". {doc}" if doc else ""
    return f"{text} ({nested})".replace("%", "%%")  # argparse formats help with %


def _share(action: argparse.Action, groups: list[str], classes: dict[str, type | None]) -> bool:
    """A command flag one class also takes as a choice of names (the example's ``lr_scheduler: Literal["step",
    ...]`` beside LightningCLI's ``--lr_scheduler CLASS``): those names go to the class, anything else to the flag."""
    if len(groups) != 1:
        return False
    group, name = groups[0], action.dest
    choices = typing.get_args(init_parameters(classes[group])[name].annotation)
    if typing.get_origin(init_parameters(classes[group])[name].annotation) is not typing.Literal:
        return False
    spelled = type(action)

    class Shared(spelled):
        def __call__(self, parser, cfg, values, option_string=None):
            if values in choices:
                cfg[f"{group}.init_args.{name}"] = values
                return None
            return super().__call__(parser, cfg, values, option_string)

    action.__class__ = Shared
    return True


def what_was_rejected(error: BaseException) -> str:
    """A library's rejection of a flag, as one line: the reason at the bottom of any wrapping, led by
    the flag where Lightning names a Trainer argument (``Trainer(devices='0')``)."""
    error = root_cause(error)
    message = one_line(str(error)) or type(error).__name__
    argument = re.search(r"Trainer\((\w+)=([^)]*)\)", message)
    if argument:
        flag = argument[1] if argument[1] in TRAINER_FLAGS else f"trainer.{argument[1]}"
        message = f"--{flag} {argument[2].strip(chr(39))}: {message}"
    return message


def as_flag(message: str, flat: dict[str, str], classes: dict[str, type | None]) -> str:
    """A library message that starts with an argument's name (``lr 0.0: ...``), spelled as its flag."""
    name = message.split(" ", 1)[0]
    if name in flat:
        return f"--{name}" + message[len(name) :]
    for group, cls in classes.items():
        if cls is not None and name in init_parameters(cls):
            return f"--{group}.{name}" + message[len(name) :]
    return message


def without_flag(args: list[str], flag: str) -> list[str]:
    """``args`` without ``flag`` and its value (given as ``flag value`` or ``flag=value``): for the
    commands the run prints, which repeat the user's flags."""
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == flag:
            skip = True
        elif not arg.startswith(f"{flag}="):
            kept.append(arg)
    return kept


def nested_flat_flags(args: list[str], flat: dict[str, str]) -> list[str]:
    """A flat flag's nested flags, as its class's own: ``--net.hidden_size 8`` (after ``--net CLASS``) is
    ``--model.net.hidden_size 8``. Run flags keep their own nested flags (``--optimizer.lr``): they are
    never flat."""
    spelled = []
    for arg in args:
        key = arg.split("=", 1)[0]
        if arg.startswith("--") and "." in key and key[2:].split(".", 1)[0] in flat:
            arg = f"--{flat[key[2:].split('.', 1)[0]]}.{arg[2:]}"
        spelled.append(arg)
    return spelled
