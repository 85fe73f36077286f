"""The run machinery on a model that is not the example: flat flags from the user's classes, LightningCLI's
subcommands with the checkpoint's run, whose error is whose, and Lightning's defaults for any model."""

import re

import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from linear_pl.runner import progress
from linear_pl.runner.cli import build_run, cli_main
from linear_pl.runner.flags import init_parameters, registered_arguments
from linear_pl.runner.project import Project, registered_project
from runner.commands import assert_clean
from runner.lit_classifier import CLASSIFIER, Blobs, Classifier, InjectedClassifier


def test_every_argument_of_the_users_classes_is_a_flat_flag(tmp_path):
    run = build_run([*CLASSIFIER, "--hidden_size", "64", "--dropout", "0", "--num_samples", "300", "--lr", "0.05"])
    model, data = run.config.model.init_args, run.config.data.init_args
    assert (model.hidden_size, model.dropout, model.lr, data.num_samples) == (64, 0.0, 0.05, 300)
    assert run.model.net[0].out_features == 64 and run.model.net[2].p == 0.0  # the model was built with them
    assert build_run([*CLASSIFIER, "--model.hidden_size", "8", "--hidden_size", "16"]).model.hparams.hidden_size == 16


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--hidden", "64"], "error: unrecognized arguments: --hidden 64"),  # no prefix of --hidden_size
        (["--max_epoch", "3"], "error: unrecognized arguments: --max_epoch 3"),  # nor of --max_epochs
        (["--num_features", "3"], "error: unrecognized arguments: --num_features 3"),  # linked from the data
        (
            ["--hidden_size", "many"],
            "error: Parser key \"model.hidden_size\": Expected a <class 'int'>. Got value: many",
        ),
        (["--model", "nowhere.Model"], "error: --model nowhere.Model: cannot import it (No module named 'nowhere')"),
        (
            ["--model", "runner.lit_classifier.Blobs"],
            "error: --model runner.lit_classifier.Blobs: not a LightningModule",
        ),
    ],
)
def test_a_flag_is_given_whole_or_refused_in_one_line(train, flags, message):
    run = train(*CLASSIFIER, *flags)
    assert run.status == 2 and run.stderr.startswith(message) and len(run.stderr.splitlines()) == 1, run.stderr


class WideBlobs(Blobs):
    """A data module that takes an argument of the model's name."""

    def __init__(self, hidden_size: int = 4, **kwargs) -> None:
        super().__init__(**kwargs)


def test_a_name_both_classes_take_is_refused_naming_both(train):
    run = train(
        "--model",
        "runner.lit_classifier.Classifier",
        "--data",
        "runner.test_command_line.WideBlobs",
        "--hidden_size",
        "8",
    )
    assert run.status == 2
    assert (
        run.stderr
        == "error: --hidden_size: both --model.hidden_size and --data.hidden_size take it; give one of those\n"
    )
    config = build_run(["--model", "runner.lit_classifier.Classifier", "--data", "runner.test_command_line.WideBlobs",
                        "--model.hidden_size", "8", "--data.hidden_size", "3"]).config  # fmt: skip
    assert (config.model.init_args.hidden_size, config.data.init_args.hidden_size) == (8, 3)


def test_a_users_model_gets_lightnings_defaults_not_the_examples(train):
    config = build_run(CLASSIFIER).config
    assert config.trainer.max_epochs is None and config.trainer.check_val_every_n_epoch == 1  # Lightning's own
    run = train(*CLASSIFIER, "--max_epochs", "3")
    assert run.status == 0, run.stderr
    assert [line.split()[1] for line in run.stdout.splitlines() if line.startswith("Epoch")] == [
        "[1/3]",
        "[2/3]",
        "[3/3]",
    ]
    assert run.results["epochs"] == 3 and 0.0 < run.results["best_value"] < 1.2


def test_test_validate_and_predict_rebuild_the_checkpoints_run(train, capsys):
    fit = train(*CLASSIFIER, "--max_epochs", "4", "--hidden_size", "16", "--num_samples", "600")
    assert fit.status == 0, fit.stderr
    best = fit.run_dir / "checkpoints" / "best.ckpt"
    root = ["--default_root_dir", str(fit.root)]
    # No --model, no --data: the run's config.yaml says them, and its arguments (hidden_size 16).
    tested = train("test", "--ckpt_path", "best", *root)
    assert tested.status == 0, tested.stderr
    assert tested.stdout.startswith(f"{best}: test_acc ") and "test_loss" in tested.stdout
    # The same figure as the run's own test of best.ckpt (validate's: test_lightning_habits.py).
    test_acc = float(tested.stdout.split("test_acc ")[1].split()[0])
    assert test_acc == pytest.approx(fit.results["test"]["test/acc"], abs=1e-6)
    validated = train("validate", "--ckpt_path", "best", *root)
    assert validated.status == 0 and validated.stdout.startswith(f"{best}: val_acc ")
    # Rows given as --x reach predict_step as a TensorDataset's loader gives them, [x].
    rows = train("predict", "--ckpt_path", "best", *root, "--x", "[[0, 0], [5, 5], [-5, 5]]")
    assert rows.status == 0, rows.stderr
    model = Classifier.load_from_checkpoint(best, weights_only=True).eval()
    expected = model(torch.tensor([[0.0, 0], [5, 5], [-5, 5]])).argmax(dim=1).tolist()
    assert rows.stdout.split() == [str(c) for c in expected]
    # Without rows: the data's own predict_dataloader (its test inputs: 0.2 of 600 samples).
    over_data = train("predict", "--ckpt_path", "best", *root)
    assert over_data.status == 0 and len(over_data.stdout.split()) == 120  # 0.2 of 600
    # A flag on the command line overrides the run's config.
    smaller = train("test", "--ckpt_path", "best", *root, "--num_samples", "100")
    assert smaller.status == 0 and smaller.stdout != tested.stdout


def test_the_scripts_run_a_users_model_with_clean_output(script):
    """As a user runs them, every warning shown: train.py, then predict.py (train.py predict's short spelling)."""
    fit = script("train", *CLASSIFIER, "--max_epochs", "2")
    assert fit.status == 0, fit.stderr
    assert_clean(fit)
    predicted = script("predict", "--ckpt_path", "last", "--x", "[1, 2]")
    assert predicted.status == 0, predicted.stderr
    assert predicted.stdout.strip() in ("0", "1", "2")
    assert_clean(predicted)


class TypoInInit(Classifier):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.head = nn_Linear(2, 3)  # noqa: F821 -- the user's typo under test


class MissingFile(Blobs):
    def setup(self, stage: str | None = None) -> None:
        with open("no/such/file.csv") as f:  # the user's bug under test
            f.read()


@pytest.mark.parametrize(
    ("flags", "raised"),
    [
        (["--model", "runner.test_command_line.TypoInInit"], "NameError: name 'nn_Linear' is not defined"),
        (["--data", "runner.test_command_line.MissingFile"], "FileNotFoundError: [Errno 2] No such file or directory"),
    ],
)
def test_the_users_bug_is_their_traceback_with_file_and_line(train, flags, raised):
    run = train(*CLASSIFIER, *flags, "--max_epochs", "2")
    assert run.status == 1
    assert "Traceback (most recent call last)" in run.stderr and raised in run.stderr
    assert f'File "{__file__}", line ' in run.stderr  # their file, their line
    assert run.stderr.splitlines()[-1].startswith("error: the run stopped on the exception above")
    assert "writing the run's files failed" not in run.stderr


class ManualSteps(Classifier):
    """A user's model that steps its optimizer itself (manual optimization)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.automatic_optimization = False

    def training_step(self, batch, batch_idx):
        optimizer = self.optimizers()
        optimizer.zero_grad()
        loss = super().training_step(batch, batch_idx)
        self.manual_backward(loss)
        optimizer.step()


def test_a_trainer_flag_lightning_refuses_only_once_fit_starts_is_one_line(train):
    # Trainer(gradient_clip_val=1) is built; fit then refuses it for a model that optimizes by hand.
    manual = ["--model", "runner.test_command_line.ManualSteps", "--max_epochs", "1"]
    run = train(*CLASSIFIER, *manual, "--trainer.gradient_clip_val", "1")
    assert run.status == 2 and "Traceback" not in run.stderr
    assert run.stderr.startswith("error: --trainer.gradient_clip_val 1.0: Automatic gradient clipping is not supported")
    assert len(run.stderr.splitlines()) == 1
    # Lightning checks val_check_interval against the epoch's batches only once it has the data.
    run = train(*CLASSIFIER, "--num_samples", "600", "--max_epochs", "1", "--trainer.val_check_interval", "1000")
    assert run.status == 2 and len(run.stderr.splitlines()) == 1, run.stderr
    assert run.stderr.startswith("error: `val_check_interval` (1000) must be less than or equal to the number of")


def test_a_bad_argument_value_is_still_one_line(train):
    run = train(*CLASSIFIER, "--trainer.max_epochs", "0")
    assert run.status == 2 and run.stderr == "error: --max_epochs 0: must be >= 1\n"


def test_without_a_profile_the_model_must_be_named(train, monkeypatch):
    import linear_pl.runner.cli as cli  # noqa: PLC0415 -- the module whose profile lookup is replaced

    monkeypatch.setattr(cli, "registered_project", Project)
    run = train("--max_epochs", "1")
    assert run.status == 2
    assert run.stderr == "error: --model: give the class path of a LightningModule (this project sets no default)\n"
    assert train(*CLASSIFIER, "--max_epochs", "1").status == 0


def test_validation_within_an_epoch_keeps_best_monitor_early_stopping_and_results(train):
    # Validate twice an epoch: best.ckpt, the monitor, early stopping and results.json follow every validation.
    run = train(*CLASSIFIER, "--max_epochs", "3", "--trainer.val_check_interval", "0.5", "--patience", "20")
    assert run.status == 0, run.stderr
    events = EventAccumulator(str(run.run_dir))
    events.Reload()
    val_losses = [event.value for event in events.Scalars("val/loss")]
    assert len(val_losses) >= 6  # two an epoch (and the final weights' own)
    best = torch.load(run.run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    state = next(v for k, v in best["callbacks"].items() if "RunCheckpoints" in k)
    assert run.results["best_value"] == pytest.approx(min(val_losses)) == pytest.approx(float(state["best_score"]))
    stopped = train(*CLASSIFIER, "--max_epochs", "50", "--trainer.val_check_interval", "0.5", "--patience", "1",
                    "--lr", "0.3")  # fmt: skip
    assert stopped.status == 0 and stopped.results["stopped_because"] == "val_plateau"


def test_a_long_epoch_prints_its_progress_between_steps(train, monkeypatch):
    """Within an epoch a plain line (stdout not a terminal) every LOG_SECONDS, here 0: after every step."""
    monkeypatch.setattr(progress, "LOG_SECONDS", 0.0)
    run = train(*CLASSIFIER, "--max_epochs", "1", "--num_samples", "600", "--batch_size", "30")
    assert run.status == 0, run.stderr
    line = re.compile(r"Epoch 1/1  batch (\d+)/(\d+)  step (\d+)  loss \S+  \d+ steps/s")
    steps = [line.fullmatch(text) for text in run.stdout.splitlines() if text.startswith("Epoch 1/1  batch")]
    assert steps and all(steps), run.stdout
    assert [int(m[1]) for m in steps] == list(range(1, 13)) and {m[2] for m in steps} == {"12"}  # 360 rows / 30
    assert all(m[3] == m[1] for m in steps)  # one optimizer step a batch
    assert run.stdout.index("batch 12/12") < run.stdout.index("Epoch [1/1]")  # then the epoch's own line
    assert "\r" not in run.stdout  # a terminal's line is rewritten in place; a log's is not


INJECTED = ["--model", "runner.lit_classifier.InjectedClassifier", "--data", "runner.lit_classifier.Blobs", "--net",
            "runner.lit_classifier.DenseNet", "--num_samples", "600", "--max_epochs", "1"]  # fmt: skip


def test_a_flat_flag_of_an_injected_class_takes_its_nested_flags(train):
    run = train(*INJECTED, "--net.hidden_size", "5", "--model.optimizer.lr=0.05")
    assert run.status == 0, run.stderr
    model = yaml.safe_load((run.run_dir / "config.yaml").read_text())["model"]["init_args"]
    assert model["net"] == {"class_path": "runner.lit_classifier.DenseNet",
                            "init_args": {"num_features": 2, "hidden_size": 5, "num_classes": 3}}  # fmt: skip
    last = torch.load(run.run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["state_dict"]["net.layers.0.weight"].shape == (5, 2)
    assert last["optimizer_states"][0]["param_groups"][0]["lr"] == 0.05


def test_a_run_flag_that_shadows_a_model_argument_names_the_key_that_reaches_it(train, capsys):
    # InjectedClassifier takes optimizer and compile, as lightning-hydra-template's MNISTLitModule does.
    with pytest.raises(SystemExit):
        cli_main([*INJECTED, "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    # The chosen classes' flags with their type, default and docstring; nothing of a class not chosen.
    assert "--net NET torch.nn.modules.module.Module, required. the network, given whole. (--model.net)" in shown
    assert "--batch_size BATCH_SIZE int, default: 32 (--data.batch_size)" in shown
    # Not the flags of the project's own classes, which were not chosen, nor its description.
    taken = {*init_parameters(InjectedClassifier), *init_parameters(Blobs), "lr_scheduler"}  # and LightningCLI's
    others = [name for name in registered_arguments(registered_project()) if name not in taken]
    assert not [name for name in others if f"--{name} " in shown]
    assert " ".join(Project().description.split()) in shown  # the runner's own, for a model of the user's
    assert "(not InjectedClassifier's optimizer: --model.optimizer)" in shown
    assert "(not InjectedClassifier's compile: --model.compile)" in shown
    run = train(*INJECTED, "--compile", "abc")
    assert run.status == 2 and run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith('error: Parser key "compile": Expected a ')
    assert run.stderr.endswith("; --compile is the run's own flag; the model's compile argument is --model.compile\n")
    run = train(*INJECTED, "--optimizer.lr", "0.1")
    assert run.status == 2 and run.stderr.count("\n") == 1, run.stderr
    assert "; --optimizer is the run's own flag; the model's optimizer argument is --model.optimizer" in run.stderr
    run = train(*INJECTED, "--model.compile", "true")
    assert run.status == 0, run.stderr
    assert yaml.safe_load((run.run_dir / "config.yaml").read_text())["model"]["init_args"]["compile"] is True


def test_optimizer_replacing_the_models_configure_optimizers_says_so_in_one_line(train, recwarn):
    scheduled = ["--model.scheduler", "torch.optim.lr_scheduler.StepLR", "--model.scheduler.step_size", "1"]
    own = train(*INJECTED, *scheduled)
    assert own.status == 0, own.stderr
    assert len(torch.load(own.run_dir / "checkpoints" / "last.ckpt", weights_only=True)["lr_schedulers"]) == 1
    run = train(*INJECTED, *scheduled, "--optimizer", "torch.optim.SGD", "--optimizer.lr", "0.1")
    assert run.status == 0, run.stderr
    assert "note: --optimizer SGD replaces InjectedClassifier.configure_optimizers: its own optimizer and any " \
           "scheduler it makes are not used" in run.stderr  # fmt: skip
    assert not [w for w in recwarn if "will be overridden" in str(w.message)]  # Lightning's, said in ours
    last = torch.load(run.run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["lr_schedulers"] == [] and last["optimizer_states"][0]["param_groups"][0]["lr"] == 0.1
    assert "momentum" in last["optimizer_states"][0]["param_groups"][0]  # SGD's, not the model's Adam


class PredictBug(Classifier):
    def predict_step(self, batch, batch_idx):
        raise RuntimeError("a bug in predict_step")


def test_a_failed_predict_names_the_checkpoint_it_read(train):
    trained = train(
        *CLASSIFIER, "--model", "runner.test_command_line.PredictBug", "--num_samples", "600", "--max_epochs", "1"
    )
    assert trained.status == 0, trained.stderr
    run = train("predict", "--ckpt_path", "last", "--data", "runner.lit_classifier.Blobs", "--num_samples", "600")
    last = trained.run_dir / "checkpoints" / "last.ckpt"
    assert run.status == 1 and "RuntimeError: a bug in predict_step" in run.stderr
    assert (
        run.stderr.splitlines()[-1] == f"error: the run stopped on the exception above; the checkpoint it read: {last}"
    )


def test_a_registered_class_that_is_not_chosen_is_never_needed(train, monkeypatch):
    # A generated project whose starter was replaced, its profile not yet edited.
    import linear_pl.runner.cli as cli  # noqa: PLC0415 -- the module whose profile lookup is replaced

    gone = Project(model="pkg.model.Starter", data="pkg.data.Starter", model_names={"starter": "pkg.model.Starter"},
                   data_names={"starter": "pkg.data.Starter"})  # fmt: skip
    monkeypatch.setattr(cli, "registered_project", lambda: gone)
    run = train(*CLASSIFIER, "--num_samples", "600", "--max_epochs", "1")
    assert run.status == 0, run.stderr
    assert run.results["model"] == "Classifier"
    run = train("--max_epochs", "1")  # the default is chosen: it must import
    assert run.status == 2 and run.stderr.startswith("error: --model pkg.model.Starter: cannot import it")
