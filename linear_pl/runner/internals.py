"""The Lightning and jsonargparse internals linear_pl relies on: each one here, with why; each one tested.

Everything else uses public API. When an upgrade breaks one of these, tests/test_internals.py says
which, in one line; the fix is local to this file.
"""

import re
import threading

import lightning as L
import torch
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


class PerEpochCallback(L.Callback):
    """A callback that acts between epochs only: its per-batch hooks are None, so Lightning skips them.

    Lightning calls each per-batch hook of every callback at every step, whether or not the callback
    overrides it: four callbacks with nothing to do cost 64 µs a step here, 15% of a step on the
    smallest model's data. ``_call_callback_hooks`` skips a hook that is not callable; that check is the
    internal relied on. A subclass that needs one of these hooks defines it as usual.
    """

    on_train_batch_start = on_train_batch_end = None
    on_before_backward = on_after_backward = on_before_optimizer_step = on_before_zero_grad = None
    on_validation_batch_start = on_validation_batch_end = None
    on_test_batch_start = on_test_batch_end = on_predict_batch_start = on_predict_batch_end = None


def choose_data_hooks_once(module: L.LightningModule) -> None:
    """Decide once whose batch-transfer hooks run, the data module's or the model's, for the whole run.

    With a LightningDataModule, Lightning asks at every step, for each of its three batch-transfer
    hooks, whether the data module or the model overrides it: six ``is_overridden`` calls, 25 µs a
    step here, 4% of a step on a tiny model's data. The answer cannot change during a run. The
    internal relied on is ``trainer._data_connector._datahook_selector``, which Lightning makes
    anew for each fit, validate or predict; its choice (and its warning when both override a hook)
    is Lightning's own, asked once per hook.
    """
    trainer = module._trainer  # None when setup() is called by hand: nothing to decide
    selector = None if trainer is None else trainer._data_connector._datahook_selector
    if selector is None or selector.datamodule is None:
        return  # without a data module Lightning asks nothing
    chosen = {hook: selector.get_instance(hook) for hook in selector._valid_hooks}
    selector.get_instance = chosen.__getitem__  # Lightning asks only for these three


def early_stopping_checks_on_train_epochs(callback: EarlyStopping, on_train_epochs: bool) -> None:
    """Make Lightning's EarlyStopping check at training epochs' ends (True) or after validation (False).

    Its constructor's ``check_on_train_epoch_end``, decided later: whether a run has validation data
    is known only once the data is set up, and without any EarlyStopping must watch the training
    loss at epochs' ends (no validation ever ends). The attribute that argument sets is the internal.
    """
    callback._check_on_train_epoch_end = on_train_epochs


def publish_metric(trainer: L.Trainer, name: str, value: torch.Tensor) -> None:
    """Make ``value`` ``trainer.callback_metrics[name]``, as ``self.log(name, value, logger=False)`` would.

    Where callbacks (ours, and a user's EarlyStopping, ModelCheckpoint or ReduceLROnPlateau) look for
    a metric. ``self.log`` once an epoch cost 1.4 ms of Lightning bookkeeping here, as much as three
    steps of a tiny model's data. The dict ``callback_metrics`` returns is the one Lightning keeps:
    it only updates it with what was logged, and empties it when a run (or its sanity check) starts.
    """
    trainer.callback_metrics[name] = value


# The wording of the messages Lightning 2.6 logs on every run that we drop (errors.silence_known_noise):
# advertising, and "Seed set to N" (the seed is in config.yaml, and the line would precede any error
# message). Under DDP the other ranks prefix it with "[rank: N] ".
KNOWN_NOISE = re.compile(r"(\[rank: \d+\] )?(💡 Tip|Seed set to)")


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


def shut_down_threads() -> None:
    """Stop and wait for the process's threads as Python's own exit does, before it ends at once (process_exit).

    Python's exit first runs the hooks libraries register with ``threading._register_atexit`` -- how a
    ``concurrent.futures`` thread pool (torch.compile's workers) stops its idle threads -- and only then
    joins every non-daemon thread. Joining them without the hooks waits forever for such a pool.
    ``threading._shutdown`` is that step of Python's exit; it must be called from the main thread.
    """
    threading._shutdown()


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
