"""Each Lightning or jsonargparse internal in linear_pl/internals.py still behaves as relied on.

A failure here after an upgrade names the internal that changed; the fix belongs in internals.py.
"""

import subprocess
import sys

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.trainer.connectors import data_connector

from linear_pl.regression import LinearModel, SyntheticDataModule
from linear_pl.runner.internals import (
    CLASS_PATH_KEY,
    PerEpochCallback,
    early_stopping_checks_on_train_epochs,
    epoch_about_to_run,
    one_line,
)

UPGRADE = "Lightning or jsonargparse changed an internal linear_pl relies on: see linear_pl/internals.py"


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


def test_lightning_skips_a_callback_hook_that_is_none():
    class CountEpochs(PerEpochCallback):
        epochs = 0

        def on_train_epoch_end(self, trainer, pl_module):
            self.epochs += 1

    counter = CountEpochs()
    assert counter.on_train_batch_end is None
    try:
        quiet_trainer(max_epochs=2, callbacks=[counter]).fit(LinearModel(lr=1e-6), SyntheticDataModule())
    except TypeError as error:  # Lightning called None
        raise AssertionError(f"{UPGRADE}: PerEpochCallback ({error})") from error
    assert counter.epochs == 2


def test_the_data_hooks_are_chosen_once_and_the_data_modules_own_still_runs(monkeypatch):
    asked = []
    is_overridden = data_connector.is_overridden
    monkeypatch.setattr(data_connector, "is_overridden", lambda *a, **k: asked.append(a[0]) or is_overridden(*a, **k))

    class CountedData(SyntheticDataModule):  # 10 samples at batch 1, one validation batch
        transferred = 0

        def on_after_batch_transfer(self, batch, dataloader_idx):
            self.transferred += 1
            return batch

    data = CountedData()
    quiet_trainer(max_epochs=3).fit(LinearModel(lr=1e-6), data)
    assert data.transferred == 3 * 10 + 1 + 3  # every training step, the sanity check, each validation
    # Lightning alone asks 3 hooks x (1 or 2) questions at each of those 34 batches.
    transfer_hooks = data_connector._DataHookSelector(model=None, datamodule=None)._valid_hooks  # the three
    asked = [hook for hook in asked if hook in transfer_hooks]
    assert len(asked) <= 6, f"{UPGRADE}: choose_data_hooks_once ({len(asked)} is_overridden calls)"
    LinearModel().setup("predict")  # by hand, without a trainer: nothing to choose, no error


def test_a_published_train_loss_reaches_lightnings_own_callbacks():
    # EarlyStopping on train/loss with an unreachable threshold stops after the first epoch, if it sees
    # the metric; without it, it would raise (strict).
    stop = EarlyStopping("train/loss", stopping_threshold=float("inf"), check_on_train_epoch_end=True)
    trainer = quiet_trainer(max_epochs=5, callbacks=[stop])
    trainer.fit(LinearModel(lr=1e-6), SyntheticDataModule())
    assert trainer.current_epoch == 1, f"{UPGRADE}: publish_metric (stopped after {trainer.current_epoch} epochs)"
    assert trainer.callback_metrics["train/loss"].item() > 0


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


def test_shut_down_threads_stops_a_thread_pool_left_running():
    """Python 3.11-3.13: ``threading._shutdown`` runs the ``threading._register_atexit`` hooks (how a
    ``concurrent.futures`` pool stops its idle workers) before joining the threads. Run in a process of its
    own: it ends the threading of the process that calls it."""
    code = (
        "from concurrent.futures import ThreadPoolExecutor; from linear_pl.runner.internals import shut_down_threads\n"
        "pool = ThreadPoolExecutor(1); pool.submit(print, 'ran').result(); shut_down_threads(); print('stopped')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout == "ran\nstopped\n", f"{UPGRADE} (Python's threading._shutdown): {done.stderr}"


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
