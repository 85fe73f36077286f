"""Each internal in linear_pl/runner/internals.py still behaves as relied on, and no other file uses one.

A failure here after an upgrade names the internal that changed; the fix belongs in internals.py.
"""

import argparse
import ast
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.cli import LightningArgumentParser
from torch.utils.data import DataLoader, TensorDataset

from linear_pl.regression import LinearModel, SyntheticDataModule
from linear_pl.runner.internals import (
    CLASS_PATH_KEY,
    early_stopping_checks_on_train_epochs,
    epoch_about_to_run,
    keeps_its_own_state,
    one_line,
    option_action,
)

UPGRADE = "Lightning or jsonargparse changed an internal linear_pl relies on: see linear_pl/internals.py"
ROOT = Path(__file__).resolve().parent.parent


def test_epoch_about_to_run_counts_the_epoch_whose_end_is_being_saved():
    seen = []

    class Record(L.Callback):
        def on_train_epoch_end(self, trainer, pl_module):  # where last.ckpt is saved
            seen.append(epoch_about_to_run(trainer))

    trainer = L.Trainer(
        max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[Record()],
    )  # fmt: skip
    trainer.fit(LinearModel(lr=1e-6), SyntheticDataModule())
    assert seen == [1, 2, 3], f"{UPGRADE}: fit_loop.epoch_progress.current.processed gave {seen}"


def quiet_trainer(**kwargs) -> L.Trainer:
    return L.Trainer(
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, **kwargs
    )


def test_a_parsers_action_is_found_by_its_option_string():
    for parser in (argparse.ArgumentParser(), LightningArgumentParser()):
        added = parser.add_argument("--hidden_size", type=int, default=8)
        assert option_action(parser, "--hidden_size") is added, f"{UPGRADE}: argparse's _option_string_actions"
        assert option_action(parser, "--nothing") is None


class KeepsItsState(DataLoader):
    """A loader with its own state, as torchdata's StatefulDataLoader has."""

    loaded: list = []

    def state_dict(self) -> dict:
        return {"served": 3}

    def load_state_dict(self, state_dict: dict) -> None:
        self.loaded.append(state_dict)


class StatefulData(L.LightningDataModule):
    def train_dataloader(self) -> DataLoader:
        x = torch.randn(8, 7)
        return KeepsItsState(TensorDataset(x, x.sum(dim=1)), batch_size=4)


def test_lightning_saves_and_restores_the_state_of_a_loader_that_keeps_its_own(tmp_path):
    assert keeps_its_own_state(KeepsItsState(TensorDataset(torch.zeros(2))))
    assert not keeps_its_own_state(DataLoader(TensorDataset(torch.zeros(2))))
    saved = tmp_path / "saved.ckpt"

    class SaveAfterFirstStep(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step == 1:
                trainer.save_checkpoint(saved)  # within the epoch (2 batches): the loader's state matters

    quiet_trainer(max_epochs=1, callbacks=[SaveAfterFirstStep()]).fit(LinearModel(lr=1e-6), StatefulData())
    state = torch.load(saved, weights_only=True)["loops"]["fit_loop"]["state_dict"].get("combined_loader")
    assert state == [{"served": 3}], f"{UPGRADE}: Lightning's _Stateful test of a train loader (saved {state})"
    quiet_trainer(max_epochs=1).fit(LinearModel(lr=1e-6), StatefulData(), ckpt_path=saved)
    assert KeepsItsState.loaded == [{"served": 3}], f"{UPGRADE}: Lightning's _Stateful test of a train loader"


# The libraries whose private names only internals.py may use; argparse's and os._exit too.
LIBRARIES = ("lightning", "pytorch_lightning", "lightning_fabric", "lightning_utilities", "jsonargparse", "optuna",
             "optuna_integration", "argparse", "torch")  # fmt: skip
NAMEDTUPLE_API = {"_replace", "_asdict", "_fields", "_make", "_field_defaults"}  # public, despite the underscore


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_uses(sources: dict[str, str]) -> list[str]:
    """``file:line name`` for each private name of another library that ``sources`` (file -> code) use.

    An attribute is private when its name starts with one underscore and no file of ``sources`` defines that
    name (a function, class, variable, argument or attribute it assigns): then it can only be a library's.
    Also ``from X import _name``, a private module anywhere in an imported path, and ``os._exit``.
    """
    trees = {name: ast.parse(code) for name, code in sources.items()}
    ours = set(NAMEDTUPLE_API)
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                ours.add(node.name)
            elif isinstance(node, ast.Name | ast.Attribute) and isinstance(node.ctx, ast.Store):
                ours.add(node.id if isinstance(node, ast.Name) else node.attr)
            elif isinstance(node, ast.arg):
                ours.add(node.arg)
    found = []
    for name, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in ours - {"_exit"}:
                found.append(f"{name}:{node.lineno} .{node.attr}")
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in LIBRARIES:
                imported = [alias.name for alias in node.names]
                if any(map(_private, [*node.module.split("."), *imported])):
                    found.append(f"{name}:{node.lineno} from {node.module} import {', '.join(imported)}")
            elif isinstance(node, ast.Import):
                found += [f"{name}:{node.lineno} {a.name}" for a in node.names if any(map(_private, a.name.split(".")))]
    return found


def test_no_file_but_internals_uses_a_private_name_of_a_library():
    files = [*(ROOT / "linear_pl").rglob("*.py"), *(ROOT / "scripts").glob("*.py")]
    sources = {str(path.relative_to(ROOT)): path.read_text() for path in files}
    found = [use for use in private_uses(sources) if not use.startswith("linear_pl/runner/internals.py:")]
    assert found == [], f"private names outside linear_pl/runner/internals.py: {found}"


def test_the_scan_finds_each_kind_of_private_use():
    bad = {
        "flags.py": "def f(parser):\n    return parser._option_string_actions\n",
        "loader.py": "from lightning.fabric.utilities.types import _Stateful\n",
        "storage.py": "from optuna.storages._heartbeat import BaseHeartbeat\n",
        "exit.py": "import os\nos._exit(0)\n",
        "module.py": "import torch._dynamo\n",
    }
    found = private_uses(bad)
    assert [use.split(":")[0] for use in found] == list(bad), found
    ours = "class A:\n    def __init__(self):\n        self._own = 1\n\n    def get(self):\n        return self._own\n"
    assert private_uses({"ours.py": ours, "point.py": "def f(p):\n    return p._replace(x=1)\n"}) == []


def test_lightning_cli_saves_the_class_path_in_the_hyperparameters(train):
    run = train("--max_epochs", "1", "--model", "mlp", "--num_samples", "20")
    hparams = torch.load(run.run_dir / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]
    assert hparams.get(CLASS_PATH_KEY, "").endswith("MLPModel"), f"{UPGRADE}: hparams[{CLASS_PATH_KEY!r}]"


def test_jsonargparse_errors_still_reduce_to_one_reason(train):
    run = train("--lr", "abc")
    assert run.status == 2 and run.stderr.count("\n") == 1, f"{UPGRADE}: one_line on {run.stderr!r}"
    assert 'Parser key "model.lr"' in run.stderr, f"{UPGRADE}: one_line on {run.stderr!r}"
    assert one_line("plain message") == "plain message"


def test_early_stopping_can_be_told_after_construction_to_check_at_training_epochs_ends():
    # No validation data: EarlyStopping built to check after validation would never check at all.
    def stopped_after(switch: bool) -> int:
        stopping = EarlyStopping("train/loss", patience=1, check_on_train_epoch_end=False)
        if switch:
            early_stopping_checks_on_train_epochs(stopping, True)
        trainer = quiet_trainer(max_epochs=20, callbacks=[stopping], limit_val_batches=0)
        trainer.fit(LinearModel(lr=1e-30), SyntheticDataModule())  # lr ~0: train/loss never improves
        return trainer.current_epoch

    assert stopped_after(switch=False) == 20
    assert stopped_after(switch=True) < 5, f"{UPGRADE}: EarlyStopping._check_on_train_epoch_end"


# Optuna's internals (the sweep's), at the end of internals.py.
OPTUNA_UPGRADE = "Optuna changed an internal linear_pl's sweep relies on: see linear_pl/runner/internals.py"


def test_optuna_beats_and_fails_the_stale_trials_of_a_storage_on_its_heartbeat_interface(tmp_path):
    """optuna_heartbeat_base: study.optimize records a storage's heartbeat while a trial runs, and
    fail_stale_trials fails the trials its stale_trial_ids names and hands each to its stale-trial callback."""
    import warnings  # noqa: PLC0415 -- (this file's top is the runner's)

    import optuna  # noqa: PLC0415 -- Optuna is the sweep's extra
    from optuna.storages.journal import JournalFileBackend, JournalStorage  # noqa: PLC0415

    from linear_pl.runner.internals import optuna_heartbeat_base  # noqa: PLC0415

    beats, handed = [], []

    class BeatingStorage(JournalStorage, optuna_heartbeat_base()):
        def record_heartbeat(self, trial_id):
            beats.append(trial_id)

        def stale_trial_ids(self, study_id):  # every running trial: as if its worker had died
            running = self.get_all_trials(study_id, deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
            return [self.get_trial_id_from_study_id_trial_number(study_id, t.number) for t in running]

        def get_heartbeat_interval(self):
            return 60

        def get_heartbeat_stale_trial_callback(self):
            return lambda study, trial: handed.append(trial.number)

    storage = BeatingStorage(JournalFileBackend(str(tmp_path / "study.journal")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the heartbeat is experimental; ask() beside it warns
        study = optuna.create_study(storage=storage)
        study.optimize(lambda trial: 1.0, n_trials=1)
        first = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name), 0)
        assert beats == [first], (
            f"{OPTUNA_UPGRADE}: optimize did not record the heartbeat (BaseHeartbeat.record_heartbeat): {beats}"
        )
        study.ask()  # trial 1, left RUNNING
        optuna.storages.fail_stale_trials(study)
    states = [t.state.name for t in study.get_trials()]
    assert (states, handed) == (["COMPLETE", "FAIL"], [1]), f"{OPTUNA_UPGRADE}: BaseHeartbeat._get_stale_trial_ids"


def test_optuna_warns_of_a_failed_trial_under_the_logger_the_sweep_filters(monkeypatch):
    import logging  # noqa: PLC0415 -- (this file's top is the runner's)

    import optuna  # noqa: PLC0415 -- Optuna is the sweep's extra

    from linear_pl.runner.internals import OPTUNA_TRIAL_FAILED_LOGGER  # noqa: PLC0415

    logger = logging.getLogger(OPTUNA_TRIAL_FAILED_LOGGER)
    monkeypatch.setattr(logger, "filters", [])  # the sweep's own filter, if a sweep ran in this process
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)

    def fails(trial):
        raise ValueError("bad")

    try:
        optuna.create_study().optimize(fails, n_trials=1, catch=(ValueError,))
    finally:
        logger.removeHandler(handler)
    messages = [record.getMessage() for record in records]
    assert any(m.startswith("Trial 0 failed with ") for m in messages), (OPTUNA_UPGRADE, OPTUNA_TRIAL_FAILED_LOGGER)
