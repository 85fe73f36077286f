"""The internals of Lightning, torch, jsonargparse, Optuna and argparse that linear_pl relies on: each one here,
with why; each one tested.

Everything else uses public API (tests/test_internals.py checks that no other file reaches for a private
name). When an upgrade breaks one of these, tests/test_internals.py says which, in one line; the fix is
local to this file.
"""

import argparse
import re

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping

# LightningCLI stores the model's class path in its hyperparameters under this key (it is how
# ``LightningModule.load_from_checkpoint`` on a base class finds the subclass). predict builds the
# checkpoint's class from it without importing anything the checkpoint names.
CLASS_PATH_KEY = "_class_path"


def epoch_about_to_run(trainer: L.Trainer) -> int:
    """The epoch whose batches the train loader is about to serve (0-based).

    Lightning makes (and prefetches from) the first epoch's iterator before its own
    ``sampler.set_epoch`` call, and a checkpoint saved at an epoch's end restores a loop that has
    processed that epoch but not yet completed it: ``trainer.current_epoch`` (completed epochs)
    would then replay the previous epoch's order. Lightning itself sets the sampler's epoch from
    this counter; there is no public one.
    """
    return trainer.fit_loop.epoch_progress.current.processed


def train_loader_source(trainer: L.Trainer):
    """Where the fit gets its train loaders: ``.instance`` (the data module, the model, or the loaders
    given to ``fit``) and ``.name`` (``train_dataloader``). Lightning asks it anew in ``setup_data``;
    loader_state wraps it there to make the loaders resumable. None before fit attaches its data."""
    return getattr(trainer.fit_loop, "_data_source", None)


def train_loaders(trainer: L.Trainer) -> list:
    """The train loaders as Lightning iterates them (after its DDP sampler injection); [] before setup_data."""
    combined = trainer.fit_loop._combined_loader
    return [] if combined is None else list(combined.flattened)


def resumed_mid_epoch(trainer: L.Trainer) -> bool:
    """Whether this fit continues from a checkpoint saved within an epoch (valid from on_train_start)."""
    return trainer.fit_loop.restarted_mid_epoch


def iterator_served(iterator: object) -> int:
    """How many batches a DataLoader's iterator has served this epoch: torch keeps the count (for its
    IterableDataset length check) in ``_num_yielded``, and there is no public one."""
    return iterator._num_yielded


def set_iterator_served(iterator: object, count: int) -> None:
    """Make a new iterator count the ``count`` batches it skipped as served (see :func:`iterator_served`).

    The skip itself relies on ``DataLoader._index_sampler``, the property every torch DataLoader
    iterator takes its indices from (loader_state.ResumableLoader overrides it).
    """
    iterator._num_yielded = count


def keeps_its_own_state(loader: object) -> bool:
    """Whether Lightning saves a train loader's own state in checkpoints and hands it back on resume: a loader
    with ``state_dict`` and ``load_state_dict`` (torchdata's ``StatefulDataLoader``, loader_state's).

    Lightning's own test is ``isinstance(loader, _Stateful)``, a private runtime-checkable Protocol of those two
    methods; the same test is spelled out here with public Python.
    """
    return callable(getattr(loader, "state_dict", None)) and callable(getattr(loader, "load_state_dict", None))


def option_action(parser: argparse.ArgumentParser, option: str) -> argparse.Action | None:
    """The action a parser (argparse's or jsonargparse's) has for an option string such as ``--model``, or None.

    argparse keeps them in ``_option_string_actions`` and has no public lookup; LightningCLI adds
    ``--model``, ``--data``, ``--optimizer`` and the Trainer's flags itself, so their actions cannot be kept
    from ``add_argument``'s return value. flags.py changes their help and their class through this.
    """
    return parser._option_string_actions.get(option)


def early_stopping_checks_on_train_epochs(callback: EarlyStopping, on_train_epochs: bool) -> None:
    """Make Lightning's EarlyStopping check at training epochs' ends (True) or after validation (False).

    Its constructor's ``check_on_train_epoch_end``, decided later: whether a run has validation data
    is known only once the data is set up, and without any EarlyStopping must watch the training
    loss at epochs' ends (no validation ever ends). The attribute that argument sets is the internal.
    """
    callback._check_on_train_epoch_end = on_train_epochs


# jsonargparse's layout of a parse error: for a class chosen by --model or --data it lists why the
# value fits each type of a Union; there is no structured form of the reasons.
def one_line(message: str) -> str:
    """jsonargparse's message for a bad --model/--data value, cut to its reason, on one line.

    For a class chosen by --model or --data (a Union with None), jsonargparse lists why the value
    fits neither: the class's reason is the one that matters, with its key given in full.
    """
    raw = [line for line in message.splitlines() if line.strip()]
    lines = [line.strip() for line in raw]
    depth = min((len(r) - len(r.lstrip()) for r in raw if r.strip().startswith("- ")), default=0)
    items: list[str] = []  # each top-level "- reason", with the (deeper) lines that continue it
    for line, stripped in zip(raw[1:], lines[1:]):
        if stripped.startswith("- ") and len(line) - len(line.lstrip()) == depth:
            items.append(stripped[2:])
        elif items and not stripped.startswith(("Given value type", "Subtypes", "Errors:", "Does not validate")):
            items[-1] += " " + stripped
    reasons = [item for item in items if "NoneType" not in item]
    if not reasons:
        return " ".join(message.split())
    reason = re.sub(r"^Problem with given class_path '[^']*': ", "", reasons[0])
    group = re.match(r'Parser key "(\w+)"', lines[0])
    if group:
        reason = re.sub(r'^Parser key "', f'Parser key "{group[1]}.', reason)
        required = re.match(r"the following arguments are required: (.*)", reason)
        if required:  # a class's arguments without defaults, spelled as the flags that give them
            flags = ", ".join(f"--{group[1]}.{name.strip()}" for name in required[1].split(","))
            reason = f"the following arguments are required: {flags}"
    key = re.match(r'Parser key "(\w[\w.]*)":$', lines[0])  # a plain argument's own Union (int or None)
    if key and not reason.startswith("Parser key"):
        given = next((line.removeprefix("Given value: ") for line in lines if line.startswith("Given value: ")), None)
        reason = f'Parser key "{key[1]}": {reason}' + (f". Got value: {given}" if given is not None else "")
    return " ".join(reason.split())


# Optuna's internals the sweep relies on. Optuna is the sweep's extra, not the runner's: it is imported only when
# one of these is used, by linear_pl/sweep.

# The logger of the Optuna module whose warning repeats each failed trial ("Trial 3 failed with ..."), which the
# sweep drops (it prints its own line a trial). Optuna logs it under its module's name; no public name says which.
OPTUNA_TRIAL_FAILED_LOGGER = "optuna.study._optimize"


def optuna_heartbeat_base() -> type:
    """A base class that gives an Optuna storage a heartbeat: Optuna's ``BaseHeartbeat``, the interface that
    ``study.optimize`` (its heartbeat thread) and ``fail_stale_trials`` look for on a storage. Its journal storage
    has none (optuna/optuna#6615 was closed unmerged), and ``optuna.storages`` does not export the interface.

    A subclass defines ``record_heartbeat``, ``get_heartbeat_interval`` and ``get_heartbeat_stale_trial_callback``
    (public names), and ``stale_trial_ids(study_id)``: the trials it takes as dead, which Optuna asks for
    under a private name.
    """
    from optuna.storages._heartbeat import BaseHeartbeat  # noqa: PLC0415 -- Optuna is the sweep's extra

    class Heartbeat(BaseHeartbeat):
        def stale_trial_ids(self, study_id: int) -> list[int]:
            raise NotImplementedError

        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            return self.stale_trial_ids(study_id)

    return Heartbeat
