"""The search space: a YAML file of the run's own config keys, each with Optuna's kind of range.

    model.lr: {type: float, low: 1.0e-4, high: 1.0, log: true}
    model.hidden_size: {type: categorical, choices: [32, 64]}
    data.batch_size: {type: int, low: 8, high: 256, log: true}

Each key becomes the flag ``--model.lr=VALUE`` of a trial, after the sweep's base flags, so it overrides
them as any later flag does. Everything wrong with the file is one line, before any trial runs.
"""

import inspect
import json
from pathlib import Path
from typing import Any

import yaml
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from linear_pl.runner.errors import UsageError

TYPES = {"float": FloatDistribution, "int": IntDistribution, "categorical": CategoricalDistribution}
# The groups whose class the run's flags choose; a key under one must be an argument that class takes.
CLASS_GROUPS = ("model", "data", "trainer")
OPTIONAL_GROUPS = ("optimizer", "lr_scheduler")  # LightningCLI's --optimizer CLASS, --lr_scheduler CLASS


def load_space(path: Path) -> dict[str, BaseDistribution]:
    """The distributions a YAML search space file describes, by config key; one line if it cannot be."""
    try:
        entries = yaml.safe_load(path.read_text())
    except OSError as error:
        raise UsageError(f"--space {path}: cannot read it ({error.strerror})") from None
    except UnicodeDecodeError:
        raise UsageError(f"--space {path}: not a YAML file (not text)") from None
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise UsageError(f"--space {path}: not a YAML file{at} ({getattr(error, 'problem', None) or error})") from None
    if not isinstance(entries, dict) or not entries:
        raise UsageError(f"--space {path}: expected config keys with ranges, e.g. model.lr: {{type: float, ...}}")
    return {str(key): _distribution(path, str(key), spec) for key, spec in entries.items()}


def _distribution(path: Path, key: str, spec: Any) -> BaseDistribution:
    where = f"--space {path}: {key}"
    if not isinstance(spec, dict) or "type" not in spec:
        raise UsageError(f"{where}: expected {{type: float|int|categorical, ...}}, got {spec!r}")
    kind = spec.get("type")
    if kind not in TYPES:
        raise UsageError(f"{where}: unknown type {kind!r}; choose float, int or categorical")
    arguments = {name: value for name, value in spec.items() if name != "type"}
    if kind == "categorical":
        choices = arguments.pop("choices", None)
        if not isinstance(choices, list) or not choices:
            raise UsageError(f"{where}: a categorical needs a non-empty list of choices")
        # Optuna stores scalars; a list choice (hidden sizes) is kept as its JSON text, which is also
        # the flag's value.
        arguments["choices"] = [c if isinstance(c, None | bool | int | float | str) else json.dumps(c) for c in choices]
    try:
        return TYPES[kind](**arguments)
    except TypeError:  # an argument the type does not take
        taken = ", ".join(list(inspect.signature(TYPES[kind]).parameters))
        raise UsageError(f"{where}: a {kind} takes {taken}; got {', '.join(arguments)}") from None
    except ValueError as error:  # Optuna's own range checks: low > high, a log range <= 0, ...
        raise UsageError(f"{where}: {error}") from None


def check_keys(path: Path, space: dict[str, BaseDistribution], takes: dict[str, set[str] | None]) -> None:
    """One line for a key no class of the run takes: ``takes`` maps model, data, trainer, and optimizer and
    lr_scheduler where the flags choose one, to their arguments (a nested key: its first part).

    Any other key (``patience``) is checked by parsing the flag it becomes.
    """
    for key in space:
        group, _, name = key.partition(".")
        if group in OPTIONAL_GROUPS and takes.get(group) is None:
            raise UsageError(f"--space {path}: {key}: give --{group} CLASS too; its arguments are the keys")
        name = name.removeprefix("init_args.")  # config.yaml's spelling, model.init_args.lr, is the same key
        # A nested key (model.optimizer.lr, model.net.init_args.hidden_size) starts with an argument of the class;
        # the rest is checked by parsing the flag it becomes, as train.py parses it.
        name = name.partition(".")[0]
        if group in CLASS_GROUPS and name not in takes[group]:
            taken = ", ".join(sorted(takes[group]))
            raise UsageError(f"--space {path}: {key}: the run's {group} takes no {name!r}; it takes {taken}")


def as_flags(params: dict[str, Any]) -> list[str]:
    """A trial's params as the flags that set them: ``--model.lr=0.01``, ``--model.hidden_size=64``."""
    return [f"--{key}={value if isinstance(value, str) else json.dumps(value)}" for key, value in params.items()]


def ends(distribution: BaseDistribution) -> list[Any]:
    """Both ends of a range, or every choice: the values to check the run accepts before any trial."""
    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    return [distribution.low, distribution.high]


def shown(value: Any) -> str:
    """A param's value as the sweep prints it: floats to 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
