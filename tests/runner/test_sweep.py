"""Sweeps (scripts/sweep.py) on any model, here the fixture classifier: the space checked first, every trial
a run, the study's files, pruning, failures, continuing, workers side by side (--n_jobs 2), signals, and a
storage password kept out of everything."""

import csv
import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import lightning as L
import optuna
import pytest
import torch
import yaml
from optuna.storages.journal import JournalFileBackend, JournalStorage

from linear_pl.runner.cli import cli_main
from linear_pl.sweep import main as sweep_main
from linear_pl.sweep.trial import StopRequest
from linear_pl.sweep.worker import wait_for_others
from runner.commands import ROOT, assert_clean, process_env, script_command
from runner.lit_classifier import CLASSIFIER

# The classifier, small: a trial takes a second or two.
FAST = [*CLASSIFIER, "--max_epochs", "6", "--num_samples", "600", "--batch_size", "30", "--log_every_n_epochs", "2"]
SPACE = """\
model.lr: {type: float, low: 1.0e-3, high: 3.0e-2, log: true}
model.hidden_size: {type: categorical, choices: [8, 32]}
"""
TRIAL_LINE = re.compile(r"^Trial +(\d+)  model\.lr=\S+  model\.hidden_size=\d+  (.*)  \d+\.\d s$")


@pytest.fixture
def sweep(sweep):
    """conftest.py's ``sweep``, in this process, on this file's SPACE unless given another."""
    return lambda *flags, space=SPACE: sweep(*flags, space=space)


def rows(study_dir: Path) -> list[dict]:
    with open(study_dir / "trials.csv", newline="") as file:
        return list(csv.DictReader(file))


def load_study(study_dir: Path, name: str = "space") -> optuna.Study:
    storage = JournalStorage(JournalFileBackend(str(study_dir / "study.journal")))
    return optuna.load_study(study_name=name, storage=storage)


def test_a_sweep_runs_each_trial_as_a_run_and_keeps_the_best_config(sweep, tmp_path, capsys):
    run = sweep("--n_trials", "6", *FAST)
    assert run.status == 0, run.stderr
    assert_clean(run)
    study_dir = tmp_path / "sweeps" / "space"
    lines = run.stdout.splitlines()
    assert lines[0].startswith("Study 'space': 6 trials of val/loss (min), 0 done; tpe sampler seeded by --seed 0")
    trial_lines = [TRIAL_LINE.match(line) for line in lines if line.startswith("Trial ")]
    assert [int(m[1]) for m in trial_lines] == list(range(6)), run.stdout
    table = rows(study_dir)
    assert [int(r["number"]) for r in table] == list(range(6))
    complete = [r for r in table if r["state"] == "COMPLETE"]
    assert complete and {r["state"] for r in table} <= {"COMPLETE", "PRUNED", "FAIL"}
    for row in table:
        run_dir = tmp_path / row["run_dir"]
        assert run_dir == study_dir / f"trial_{row['number']}"
        results = json.loads((run_dir / "results.json").read_text())
        assert results["trial"] == int(row["number"]) and set(results["params"]) == {"model.lr", "model.hidden_size"}
        assert float(row["model.lr"]) == results["params"]["model.lr"] and int(row["epochs"]) == results["epochs"]
        assert {"config.yaml", "hparams.yaml", "train.log"} <= {p.name for p in run_dir.iterdir()}
        assert list(run_dir.glob("events.out.tfevents.*"))
        config = (run_dir / "config.yaml").read_text()
        assert f"lr: {results['params']['model.lr']}" in config  # the trial's param reached the run
        if row["state"] == "COMPLETE":
            assert float(row["value"]) == results["best_value"] and (run_dir / "checkpoints" / "best.ckpt").is_file()
    # The table of the best, best first; the plots; best.yaml, which reruns the best trial's run.
    best = min(complete, key=lambda r: float(r["value"]))
    table_start = lines.index(next(line for line in lines if line.startswith("Best ")))
    assert lines[table_start].startswith(f"Best {min(5, len(complete))} of 6 trials ({len(complete)} complete")
    assert lines[table_start + 2].split()[:2] == [best["number"], f"{float(best['value']):.4g}"]
    for plot in ("optimization_history.png", "param_importances.png"):
        assert (study_dir / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert lines[-2] == f"Best config (trial {best['number']}): sweeps/space/best.yaml"
    assert lines[-1] == "Rerun it with: python scripts/train.py --config sweeps/space/best.yaml"
    assert cli_main(["--config", "sweeps/space/best.yaml"]) == 0
    capsys.readouterr()
    rerun = json.loads((tmp_path / "lightning_logs" / "version_0" / "results.json").read_text())
    assert rerun["best_value"] == pytest.approx(float(best["value"]), rel=1e-6)


def test_trials_leak_nothing_into_each_other(sweep, tmp_path, capsys):
    """Three trials with the same params in one process end exactly alike, and like a run of their own."""
    space = "model.lr: {type: categorical, choices: [0.001]}\nmodel.hidden_size: {type: categorical, choices: [16]}\n"
    run = sweep("--n_trials", "3", *FAST, space=space)
    assert run.status == 0, run.stderr
    values = {r["value"] for r in rows(tmp_path / "sweeps" / "space")}
    assert len(values) == 1
    assert cli_main([*FAST, "--model.lr", "0.001", "--model.hidden_size", "16", "--default_root_dir", "alone"]) == 0
    capsys.readouterr()
    alone = json.loads((tmp_path / "alone" / "lightning_logs" / "version_0" / "results.json").read_text())
    assert float(values.pop()) == alone["best_value"]


def test_hopeless_trials_are_pruned_and_still_end_as_runs(sweep, tmp_path):
    space = "model.lr: {type: float, low: 1.0e-7, high: 3.0e-2, log: true}\n"
    run = sweep("--n_trials", "8", *FAST, "--max_epochs", "10", space=space)  # trials 5 and 7 draw an lr under 1e-5
    assert run.status == 0, run.stderr
    study_dir = tmp_path / "sweeps" / "space"
    pruned = [r for r in rows(study_dir) if r["state"] == "PRUNED"]
    assert pruned, run.stdout
    study = load_study(study_dir)
    for row in pruned:
        results = json.loads((tmp_path / row["run_dir"] / "results.json").read_text())
        assert results["stopped_because"] == "pruned" and results["epochs"] < 10
        # Optuna records a pruned trial's last reported value, the monitored metric at that epoch.
        trial = study.trials[int(row["number"])]
        assert float(row["value"]) == trial.intermediate_values[max(trial.intermediate_values)]
        assert f"Trial {row['number']:>3}  " in run.stdout and f"pruned ({results['epochs']} epochs)" in run.stdout


class Exploding:
    """A user's module, written to the run's directory: a model that raises in training when asked to."""

    SOURCE = """
import lightning as L
import torch


class ExplodingModel(L.LightningModule):
    def __init__(self, explode: bool = False, lr: float = 0.01):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Linear(1, 1)

    def training_step(self, batch, batch_idx):
        if self.hparams.explode:
            raise RuntimeError("boom")
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x[:, :1]).squeeze(-1), y.float())
        self.log("train/loss", loss, on_epoch=True, on_step=False)  # the README's contract: divergence is seen
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", torch.nn.functional.mse_loss(self.net(x[:, :1]).squeeze(-1), y.float()))

    def test_step(self, batch, batch_idx):  # the data has a test set, which the run tests best.ckpt on
        x, y = batch
        self.log("test/loss", torch.nn.functional.mse_loss(self.net(x[:, :1]).squeeze(-1), y.float()))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)
"""


def test_a_trial_that_raises_or_diverges_fails_with_its_reason_and_the_sweep_goes_on(sweep, tmp_path):
    (tmp_path / "exploding.py").write_text(Exploding.SOURCE)
    space = (
        "model.explode: {type: categorical, choices: [true, false]}\n"
        "model.lr: {type: categorical, choices: [1.0e-4, 100.0]}\n"
    )
    run = sweep("--n_trials", "8", "--model", "exploding.ExplodingModel", "--data", "runner.lit_classifier.Blobs",
                "--num_samples", "600", "--max_epochs", "4", "--log_every_n_epochs",
                "2", "--pruner", "none", space=space)  # fmt: skip
    assert run.status == 0, run.stderr
    table = rows(tmp_path / "sweeps" / "space")
    assert len(table) == 8
    for row in table:
        explode, lr = row["model.explode"] == "True", float(row["model.lr"])
        if explode:
            assert (row["state"], row["reason"]) == ("FAIL", "RuntimeError: boom")
            assert "Traceback" in (tmp_path / row["run_dir"] / "train.log").read_text()
        elif lr == 100.0:  # diverged: shown so, and told to Optuna as pruned, which its samplers learn from
            assert row["state"] == "DIVERGED" and row["reason"].startswith("training diverged at epoch 1")
            assert load_study(tmp_path / "sweeps" / "space").trials[int(row["number"])].state.name == "PRUNED"
        else:
            assert row["state"] == "COMPLETE"
    assert {(r["model.explode"], r["model.lr"]) for r in table} >= {("True", "0.0001"), ("False", "100.0"),
                                                                    ("False", "0.0001")}  # fmt: skip
    assert "failed: RuntimeError: boom" in run.stdout and "Traceback" not in run.stdout + run.stderr
    diverged = sum(r["state"] == "DIVERGED" for r in table)
    assert f"failed, {diverged} diverged)" in run.stdout and "diverged: training diverged at epoch 1" in run.stdout


def test_a_grid_runs_every_point_once_and_stops(sweep, tmp_path):
    space = (
        "model.lr: {type: categorical, choices: [0.003, 0.01]}\n"
        "model.hidden_size: {type: categorical, choices: [16, 32]}\n"
    )
    run = sweep("--n_trials", "10", "--sampler", "grid", "--pruner", "none", *FAST, space=space)
    assert run.status == 0, run.stderr
    assert run.stdout.startswith("Study 'space': 4 trials of val/loss (min), 0 done; grid sampler")
    points = {(r["model.lr"], r["model.hidden_size"]) for r in rows(tmp_path / "sweeps" / "space")}
    assert points == {(lr, hidden) for lr in ("0.003", "0.01") for hidden in ("16", "32")}
    assert sweep("--n_trials", "10", "--sampler", "grid", "--pruner", "none", *FAST, space=space).status == 0
    assert len(rows(tmp_path / "sweeps" / "space")) == 4  # the grid was done: no trial ran again


INJECTED = ["--model", "runner.lit_classifier.InjectedClassifier", "--data", "runner.lit_classifier.Blobs", "--net",
            "runner.lit_classifier.DenseNet", *FAST[4:]]  # fmt: skip
NESTED = """\
model.optimizer.lr: {type: float, low: 1.0e-3, high: 3.0e-2, log: true}
model.net.init_args.hidden_size: {type: categorical, choices: [4, 8]}
"""


def test_nested_keys_of_an_injected_network_and_optimizer_reach_each_trial_with_any_seed(sweep, tmp_path):
    # lightning-hydra-template's seed: the samplers' seeds stay below 2**32 whatever --seed is.
    run = sweep("--n_trials", "3", "--pruner", "none", "--seed", "12345", *INJECTED, space=NESTED)
    assert run.status == 0, run.stderr
    table = rows(tmp_path / "sweeps" / "space")
    assert len(table) == 3 and {r["state"] for r in table} == {"COMPLETE"}, table
    for row in table:
        config = yaml.safe_load((tmp_path / row["run_dir"] / "config.yaml").read_text())["model"]["init_args"]
        assert config["optimizer"]["init_args"]["lr"] == float(row["model.optimizer.lr"])
        assert config["net"]["init_args"]["hidden_size"] == int(row["model.net.init_args.hidden_size"])
        state = torch.load(tmp_path / row["run_dir"] / "checkpoints" / "last.ckpt", weights_only=True)
        assert state["state_dict"]["net.layers.0.weight"].shape[0] == int(row["model.net.init_args.hidden_size"])
        assert state["optimizer_states"][0]["param_groups"][0]["lr"] == float(row["model.optimizer.lr"])


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ("model.hiden_size: {type: int, low: 1, high: 2}", "the run's model takes no 'hiden_size'"),
        ("data.batchsize: {type: int, low: 1, high: 2}", "data.batchsize: the run's data takes no 'batchsize'"),
        ("model.lr: {type: float, low: 0.1, high: 0.01}", "model.lr: `low <= high` must hold, but got (low=0.1, "),
        ("model.lr: {type: float, low: 0, high: 1, log: true}", "model.lr: `low > 0` must hold for `log=True`"),
        ("data.batch_size: {type: int, low: 0, high: 8, log: true}", "data.batch_size: `low >= 1` must hold for"),
        ("model.lr: {type: loguniform, low: 0.1, high: 1}", "unknown type 'loguniform'; choose float, int or"),
        ("model.lr: {type: float, low: 0.1, high: 1, steps: 2}", "a float takes low, high, log, step; got low,"),
        ("model.lr: [0.1, 1", "not a YAML file at line 2"),
        ("- model.lr", "expected config keys with ranges"),
        ("model.hidden_size: {type: categorical, choices: [abc]}", "model.hidden_size abc: Parser key"),
        ("model.hidden_size: {type: categorical, choices: []}", "a categorical needs a non-empty list of choices"),
        ("optimizer.lr: {type: float, low: 0.1, high: 1}", "optimizer.lr: give --optimizer CLASS too"),
        ("model.hiden_size.x: {type: int, low: 1, high: 2}", "the run's model takes no 'hiden_size'"),
        ("model.lr.x: {type: int, low: 1, high: 2}", "model.lr.x 1: "),
    ],
)  # fmt: skip
def test_a_bad_space_is_one_line_before_any_trial(sweep, tmp_path, space, message):
    run = sweep("--n_trials", "2", *FAST, space=space + "\n")
    assert run.status == 2 and run.stdout == ""
    assert run.stderr.startswith("error: --space space.yaml: ") and run.stderr.count("\n") == 1, run.stderr
    assert message in run.stderr
    assert not (tmp_path / "sweeps").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--space", "missing.yaml"], "error: --space missing.yaml: cannot read it (No such file or directory)"),
        (["--space", "image.png"], "error: --space image.png: not a"),
        (["--n_trials", "0"], "error: --n_trials, --n_jobs and --heartbeat must be >= 1, --prune_after >= 0"),
        (["--prune_after", "-1"], "error: --n_trials, --n_jobs and --heartbeat must be >= 1, --prune_after >= 0"),
        (["--heartbeat", "0"], "error: --n_trials, --n_jobs and --heartbeat must be >= 1, --prune_after >= 0"),
        (["--ckpt_path", "last"], "error: --ckpt_path: every trial of a sweep trains from the start"),
        (["--devices", "2"], "error: --devices 2 --strategy auto: a sweep runs each trial on one device"),
        (["--strategy", "ddp"], "error: --devices auto --strategy ddp: a sweep runs each trial on one device"),
        (["--sampler", "grid"], "error: --sampler grid: every key of --space space.yaml must be categorical"),
        (["--max_epochs", "zero"], "error: Parser key \"trainer.max_epochs\""),
        (["--storage", "postgresql://alice:pa55word@127.0.0.1:1/optuna"],
         "error: --storage postgresql://alice:***@127.0.0.1:1/optuna: cannot open it ("),
    ],
)  # fmt: skip
def test_bad_sweep_flags_are_one_line(sweep, tmp_path, flags, message):
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    run = sweep(*FAST, *flags)
    assert run.status == 2 and run.stderr.startswith(message) and run.stderr.count("\n") == 1, run.stderr
    assert "pa55word" not in run.stderr + run.stdout
    assert not list((tmp_path / "sweeps").glob("*/trial_*"))


FRESH_INTERPRETER = """
import sys
from linear_pl.sweep import main
status = main(["--space", "s.yaml", "--n_jobs", "0"])
print(status, sorted({"lightning", "optuna", "torch"} & set(sys.modules)))
sys.modules["optuna"] = None  # as without the sweep extra
print(main(["--space=s"]))
"""


def test_a_bad_sweep_flag_or_a_missing_extra_is_one_line_before_lightning_is_imported(tmp_path):
    """The sweep's own flags are checked first: no 4-6 s import of Lightning and Optuna for a typo. Without the
    sweep extra (Optuna), one line says what to install."""
    run = subprocess.run([sys.executable, "-c", FRESH_INTERPRETER], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert run.stdout == "2 []\n2\n", run.stderr
    assert run.stderr == (
        "error: --n_trials, --n_jobs and --heartbeat must be >= 1, --prune_after >= 0\n"
        'error: sweeps need the sweep extra (optuna is missing): pip install -e ".[sweep]"\n'
    )


def test_a_metric_no_trial_logs_stops_the_sweep_in_one_line(sweep, tmp_path):
    run = sweep("--n_trials", "4", *FAST, "--monitor", "val/f1")
    assert run.status == 2
    assert run.stderr.startswith("error: --monitor val/f1: ") and run.stderr.count("\n") == 1, run.stderr
    assert len(list((tmp_path / "sweeps" / "space").glob("trial_*"))) == 1
    # The study has no value yet: the same name takes the right metric.
    run = sweep("--n_trials", "3", *FAST)  # the failed trial counts: two more
    assert run.status == 0, run.stderr
    assert [r["state"] for r in rows(tmp_path / "sweeps" / "space")] == ["FAIL", "COMPLETE", "COMPLETE"]


def test_the_same_command_continues_the_study_and_another_space_needs_another_name(sweep, tmp_path):
    assert sweep("--n_trials", "2", *FAST).status == 0
    run = sweep("--n_trials", "3", *FAST)
    assert run.status == 0 and ", 2 done;" in run.stdout.splitlines()[0]
    assert [r["number"] for r in rows(tmp_path / "sweeps" / "space")] == ["0", "1", "2"]
    run = sweep("--n_trials", "4", *FAST, space="model.lr: {type: float, low: 0.001, high: 0.01}\n")
    assert run.status == 2 and run.stderr.startswith("error: --study space: it searches another space or metric")
    run = sweep("--n_trials", "4", *FAST, "--mode", "max")
    assert run.status == 2 and "error: --study space: it minimizes, --mode max the opposite; give a new" in run.stderr
    (tmp_path / "sweeps" / "space" / "study.journal").unlink()  # the study gone, its trials' directories left
    run = sweep("--n_trials", "4", *FAST)
    assert run.status == 2 and "holds trial_0, not a trial of study 'space'; give another --study" in run.stderr


# ---- Several processes: each a real command, as a user starts them -------------------------------------


def start(tmp_path: Path, *flags: str) -> subprocess.Popen:
    pipe = subprocess.PIPE
    command = script_command("sweep", "--space", "space.yaml", *flags)
    return subprocess.Popen(command, cwd=tmp_path, env=process_env(), stdout=pipe, stderr=pipe, text=True)


def trial_numbers(stdout: str) -> list[int]:
    return [int(m[1]) for line in stdout.splitlines() if (m := TRIAL_LINE.match(line))]


@pytest.mark.slow
def test_two_workers_started_separately_finish_one_study_together(tmp_path):
    (tmp_path / "space.yaml").write_text(SPACE)
    workers = [start(tmp_path, "--n_trials", "8", *FAST) for _ in range(2)]
    outputs = [worker.communicate(timeout=600) for worker in workers]
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err
        assert "Traceback" not in err and "locked" not in out + err and "LockError" not in out + err
    numbers = [trial_numbers(out) for out, _ in outputs]
    assert all(numbers), outputs  # both workers ran trials
    assert sorted(numbers[0] + numbers[1]) == list(range(8))  # none lost, none numbered twice
    study = load_study(tmp_path / "sweeps" / "space")
    ran = [t for t in study.trials if not t.user_attrs.get("surplus")]
    assert [t.number for t in ran] == list(range(8)) and all(t.state.is_finished() for t in study.trials)
    trial_dirs = sorted(p.name for p in (tmp_path / "sweeps" / "space").glob("trial_*"))
    assert trial_dirs == sorted(f"trial_{n}" for n in range(8))


def test_a_waiting_worker_goes_on_when_the_other_workers_trial_ends_not_a_heartbeat_later():
    """The worker with nothing left to run waits for the others' running trials (above: its summary counts
    them); it looks at the study every second, so it goes on soon after the last one ends."""
    study = optuna.create_study()
    other = study.ask()  # RUNNING, as a trial of another worker
    threading.Timer(0.5, study.tell, (other, 1.0)).start()
    start = time.monotonic()
    wait_for_others(study, [other.number], StopRequest(), seconds=60)
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE
    assert time.monotonic() - start < 60  # it returned because the trial ended, before its 60 s
    # And a signal (the first Ctrl-C or SIGTERM, which StopRequest records) ends the wait too.
    stop, other = StopRequest(), study.ask()
    threading.Timer(0.5, stop, (signal.SIGTERM, None)).start()
    start = time.monotonic()
    wait_for_others(study, [other.number], stop, seconds=60)
    assert stop.signum == signal.SIGTERM and time.monotonic() - start < 60


class InterruptOnce(L.Callback):
    """Sends this process SIGINT at the end of the second epoch of the first trial it trains, as Ctrl-C would."""

    sent = False

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == 1 and not InterruptOnce.sent:
            InterruptOnce.sent = True
            signal.raise_signal(signal.SIGINT)


def test_ctrl_c_records_the_running_trial_and_the_printed_command_continues(sweep, tmp_path, monkeypatch):
    """The first SIGINT ends the running trial at its epoch's end; it continues first, from its last.ckpt."""
    monkeypatch.setattr(sys, "argv", [str(ROOT / "scripts" / "sweep.py")])  # as a user started it
    monkeypatch.setattr(InterruptOnce, "sent", False)
    flags = ["--n_trials", "2", *FAST, "--trainer.callbacks+=runner.test_sweep.InterruptOnce"]
    run = sweep(*flags)
    assert run.status == 130, run.stderr
    assert trial_numbers(run.stdout) == [0] and "interrupted (" in run.stdout and "it continues first" in run.stdout
    assert "1 trial (0 complete, 0 pruned, 0 failed, 1 interrupted); no best config yet." in run.stdout
    # The trial's own log names its own checkpoint (train.py's "last" is the newest run under lightning_logs/).
    log = tmp_path / "sweeps" / "space" / "trial_0" / "train.log"
    assert "--ckpt_path sweeps/space/trial_0/checkpoints/last.ckpt" in log.read_text()
    line = run.stderr.strip().splitlines()[-1]
    # The command as it was started: the script's path as given (here this checkout's, in full).
    prefix = f"Interrupted: the study is kept; continue it with: python {ROOT / 'scripts' / 'sweep.py'} "
    assert line.startswith(prefix) and line.endswith(" ".join(["--space", "space.yaml", *flags]))
    (row,) = rows(tmp_path / "sweeps" / "space")
    assert (row["state"], row["reason"]) == ("FAIL", "interrupted")
    results = json.loads((tmp_path / row["run_dir"] / "results.json").read_text())
    assert results["stopped_because"] == "interrupted" and results["epochs"] == 2
    assert (tmp_path / row["run_dir"] / "checkpoints" / "last.ckpt").is_file()
    # The printed command, run as printed, continues to 2 counted trials.
    command = line.removeprefix(prefix).split()
    again = sweep(*command[2:])  # after --space space.yaml, which the fixture gives
    assert again.status == 0, again.stderr
    table = rows(tmp_path / "sweeps" / "space")
    assert [r["number"] for r in table] == ["0", "1", "2"]
    assert table[1]["model.lr"] == row["model.lr"] and table[1]["state"] == "COMPLETE"  # the interrupted trial, resumed
    assert table[1]["resumed_from"] == "0" and load_study(tmp_path / "sweeps" / "space").trials[1].user_attrs[
        "continues"
    ] == [0]
    resumed_log = (tmp_path / "sweeps" / "space" / "trial_1" / "train.log").read_text()
    assert resumed_log.splitlines()[0].endswith(" --ckpt_path sweeps/space/trial_0/checkpoints/last.ckpt")
    assert "Restored all states from the checkpoint" in resumed_log


@pytest.mark.slow
def test_n_jobs_workers_share_the_study_and_sigterm_reaches_them_once(tmp_path, capfd, monkeypatch):
    (tmp_path / "space.yaml").write_text(SPACE)
    # The command in this process, its workers processes of their own (capfd: they print to its stdout).
    monkeypatch.setattr(sys, "argv", [str(ROOT / "scripts" / "sweep.py")])  # as a user started it
    monkeypatch.setenv("PYTHONPATH", process_env()["PYTHONPATH"])  # the workers import the classifier from tests/
    status = sweep_main(["--space", "space.yaml", "--n_trials", "4", "--n_jobs", "2", *FAST])
    out, err = capfd.readouterr()
    assert status == 0, err
    assert sorted(trial_numbers(out)) == [0, 1, 2, 3] and out.count("Rerun it with") == 1
    # train.py beside the sweep.py that was started, as it was given.
    assert f"Rerun it with: python {ROOT / 'scripts' / 'train.py'} --config sweeps/space/best.yaml" in out
    assert "Traceback" not in err
    # SIGTERM to the command alone (as a scheduler sends it): both workers end their trials cleanly.
    # Only the signal ends these trials: no early stopping (a trial that plateaued before the other
    # worker's first epoch, a busy machine's start-up lag, ran a third trial), max_time only as a bound.
    flags = ["--study", "long", "--n_trials", "6", "--n_jobs", "2", *FAST, "--max_epochs", "100000",
             "--patience", "null", "--trainer.max_time", "00:00:05:00"]  # fmt: skip
    sweep = start(tmp_path, *flags)
    logs = [tmp_path / "sweeps" / "long" / f"trial_{n}" / "train.log" for n in (0, 1)]
    deadline = time.monotonic() + 300  # only a bound: the event is both trials' first epoch lines
    while not all("Epoch [" in (p.read_text() if p.exists() else "") for p in logs):
        assert time.monotonic() < deadline and sweep.poll() is None, "the two trials never both printed an epoch"
        time.sleep(0.2)
    sweep.send_signal(signal.SIGTERM)
    out, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 143, err
    assert f"continue it with: python {ROOT / 'scripts' / 'sweep.py'} --space space.yaml --study long" in err
    table = rows(tmp_path / "sweeps" / "long")
    assert sorted(r["number"] for r in table) == ["0", "1"] and {r["reason"] for r in table} == {"interrupted"}
    for row in table:
        assert int(row["epochs"]) < 100000 and float(row["seconds"]) < 300  # the signal ended it, not max_time
    assert not [line for line in out.splitlines() if "Traceback" in line]
