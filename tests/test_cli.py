"""scripts/train.py: flags, presets, what a run prints and what it leaves on disk."""

import json

import pytest
import torch
import yaml
from runner.commands import assert_clean, run_quietly
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from linear_pl.regression import SyntheticDataModule
from linear_pl.regression.closed_form import SAFETY_FACTOR, stable_lr
from linear_pl.runner.cli import build_run, cli_main
from linear_pl.runner.run import Run

# Twenty raw epochs (no preconditioning: it would converge, and stop, in fewer), with a bias.
TENSORBOARD_RUN = ["--max_epochs", "20", "--true_weights", "[2, 3]", "--true_bias", "1", "--bias", "--seed", "2",
                   "--precondition", "none"]  # fmt: skip


@pytest.fixture(scope="module")
def tensorboard_run(tmp_path_factory):
    """One run whose TensorBoard files the tests read back."""
    root = tmp_path_factory.mktemp("tensorboard_run")
    run = run_quietly(cli_main, *TENSORBOARD_RUN, "--default_root_dir", str(root), root=root)
    assert run.status == 0, run.stderr
    return run


def parse(*flags: str) -> Run:
    """Parse and build the run as the script does, without training (in the test's own directory)."""
    return build_run(list(flags))


def test_flat_flags_set_the_nested_keys():
    cli = parse(
        "--accelerator", "cpu", "--max_epochs", "7", "--lr", "0.003", "--momentum", "0.5",
        "--lr_scheduler", "step", "--step_size", "3", "--gamma", "0.1", "--batch_size", "2",
        "--num_samples", "20", "--num_val_samples", "4", "--true_weights", "[2, 3, 4, 7]",
        "--true_bias", "1.5", "--bias", "true", "--low", "2", "--high", "9", "--noise_std", "0.1",
        "--shuffle", "true", "--seed", "5", "--log_every_n_epochs", "2",
    )  # fmt: skip
    c = cli.config
    assert (c.trainer.accelerator, c.trainer.max_epochs, c.trainer.check_val_every_n_epoch) == ("cpu", 7, 2)
    assert {k: v for k, v in cli.model.hparams.items() if not k.startswith("_")} == {
        "num_features": 4, "bias": True, "precondition": "auto", "lr": 0.003, "momentum": 0.5,
        "lr_scheduler": "step", "step_size": 3, "gamma": 0.1, "baseline": "auto",
    }  # fmt: skip
    assert dict(c.data.init_args) == {
        "true_weights": [2.0, 3.0, 4.0, 7.0], "true_bias": 1.5, "num_samples": 20, "num_val_samples": 4,
        "low": 2, "high": 9, "noise_std": 0.1, "batch_size": 2, "shuffle": True, "seed": 5, "target": "linear",
    }  # fmt: skip
    assert cli.model.weight.shape == (4,)  # num_features follows --true_weights


def test_boolean_flags_accept_bare_and_explicit_values():
    assert parse("--bias").config.model.init_args.bias is True
    assert parse("--bias", "false").config.model.init_args.bias is False
    assert parse("--shuffle", "--bias", "--seed", "1").config.data.init_args.shuffle is True


def test_nested_flags_and_last_value_wins():
    assert parse("--model.lr", "0.1", "--lr", "0.2").config.model.init_args.lr == 0.2
    assert parse("--lr", "0.2", "--model.lr", "0.1").config.model.init_args.lr == 0.1
    assert parse("--trainer.max_epochs", "5").config.trainer.max_epochs == 5


def test_preset_then_flags_override_it_and_a_later_preset_overrides_flags():
    cli = parse("--preset", "seed-4w", "--max_epochs", "5")
    assert cli.config.trainer.max_epochs == 5
    assert cli.config.model.init_args.lr == 1e-5 and cli.config.data.init_args.true_weights == [2, 3, 4, 7]
    assert parse("--max_epochs", "5", "--preset", "seed-4w").config.trainer.max_epochs == 100


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        ("seed-4w", {"true_weights": [2, 3, 4, 7], "lr": 1e-5, "max_epochs": 100, "bias": False}),
        ("seed-7w", {"true_weights": [2, 3, 4, 7, 11, 5, 13], "lr": 1e-5, "max_epochs": 200, "bias": False}),
        ("lntx", {"true_weights": [1.3, 2.9, 3.7], "lr": "auto", "max_epochs": 1000, "bias": True}),
        ("lntx-1w", {"true_weights": [1.3], "lr": "auto", "max_epochs": 1000, "bias": True}),
    ],
)
def test_presets_hold_the_tutorials_settings(preset, expected):
    c = parse("--preset", preset).config
    model, data = c.model.init_args, c.data.init_args
    got = {"true_weights": data.true_weights, "lr": model.lr, "max_epochs": c.trainer.max_epochs, "bias": model.bias}
    assert got == expected
    assert data.batch_size == 1 and data.shuffle is False


def test_print_config_round_trips(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse("--preset", "lntx", "--lr", "0.0001", "--print_config")
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert yaml.safe_load(printed)["model"]["init_args"]["lr"] == 0.0001
    config_file = tmp_path / "run.yaml"
    config_file.write_text(printed)
    again = parse("--config", str(config_file)).config
    original = parse("--preset", "lntx", "--lr", "0.0001").config
    for key in ("trainer", "model", "data", "log_every_n_epochs"):
        assert again[key] == original[key]


def test_unknown_preset_is_one_line_and_exit_2(train):
    run = train("--preset", "nope")
    assert run.status == 2
    assert run.stderr.strip().count("\n") == 0
    assert "--preset 'nope'" in run.stderr and "seed-7w" in run.stderr
    assert not (run.root / "lightning_logs").exists()


def test_gpu_without_gpu_fails_in_one_clear_line(train):
    # In-process: the line and the status are the runner's; docs/runs.md's session runs the script itself.
    assert not torch.cuda.is_available()
    run = train("--accelerator", "gpu")
    assert run.status == 2
    assert run.stderr.strip() == "error: --accelerator gpu: no GPU is available on this machine (available: cpu)"
    assert "Traceback" not in run.stdout + run.stderr
    assert not (run.root / "lightning_logs").exists()


def test_a_run_prints_cleanly_and_leaves_a_complete_run_directory(train, recwarn):
    # In this process: every warning the run raises is recorded (what a fresh process prints besides, under
    # DDP's two ranks: test_ddp.py; any model's scripts: runner/test_command_line.py).
    run = train("--max_epochs", "20", "--seed", "1", "--precondition", "none")
    assert run.status == 0, run.stderr
    assert_clean(run)
    assert not [f"{w.category.__name__}: {w.message}" for w in recwarn]
    lines = run.stdout.splitlines()
    assert lines[0].startswith("Initial weights: [")
    epoch_lines = [line for line in lines if line.startswith("Epoch [")]
    assert [line.split("]")[0] for line in epoch_lines] == ["Epoch [10/20", "Epoch [20/20"]
    assert "train_loss" in epoch_lines[0] and "val_loss" in epoch_lines[0]
    assert "\r" not in run.stdout
    assert lines[-1].startswith("Not recovered") or lines[-1].startswith("Recovered")
    assert [row.split()[0] for row in lines[-9:-1]] == ["true", "w0", "w1", "w2", "w3", "w4", "w5", "w6"]

    names = {p.name for p in run.run_dir.iterdir()}
    assert {"hparams.yaml", "config.yaml", "results.json", "checkpoints"} <= names
    assert any(name.startswith("events.out.tfevents") for name in names)
    assert (run.run_dir / "checkpoints" / "last.ckpt").stat().st_size > 0
    assert yaml.safe_load((run.run_dir / "config.yaml").read_text())["trainer"]["max_epochs"] == 20


def test_results_json(train):
    run = train("--max_epochs", "30", "--seed", "4", "--precondition", "none")
    results = run.results
    general = [
        "model",
        "seed",
        "monitor",
        "mode",
        "best_value",
        "best_epoch",
        "best_step",
        "best_checkpoint",
        "last_checkpoint",
        "stopped_because",
        "epochs",
        "global_step",
        "lr",
        "fit_seconds",
        "accelerator",
        "world_size",
        "rank_weight_spread",
        "diverged",
        "final_train_loss",
        "train_loss_metric",
        "final_val_loss",
        "metrics",
        "best_val_loss",
    ]
    regression = ["target", "true_weights", "true_bias", "initial_weights", "initial_bias", "learned_weights",
                  "learned_bias", "least_squares_weights", "least_squares_bias", "least_squares_val_loss",
                  "max_abs_error", "converged"]  # fmt: skip
    assert list(results) == general + regression  # the run's own keys, then the regression extras'
    assert results["true_weights"] == [2, 3, 4, 7, 11, 5, 13]
    assert results["true_bias"] is None and results["learned_bias"] is None and results["initial_bias"] is None
    torch.manual_seed(4)  # --seed also seeds the initial weights
    assert results["initial_weights"] == torch.randn(7).tolist()
    errors = [abs(a - b) for a, b in zip(results["learned_weights"], results["true_weights"])]
    assert results["max_abs_error"] == max(errors)
    assert max(abs(a - b) for a, b in zip(results["least_squares_weights"], results["true_weights"])) < 1e-6
    assert (results["epochs"], results["global_step"]) == (30, 300)
    x = torch.load(run.run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]["net.weight"]
    assert x.tolist() == results["learned_weights"]
    dm = SyntheticDataModule(seed=4)
    dm.setup()
    assert results["lr"] == pytest.approx(SAFETY_FACTOR * stable_lr(dm.train_x))
    assert results["final_train_loss"] > 0 and results["final_val_loss"] > 0
    assert results["accelerator"] == "cpu" and results["world_size"] == 1
    assert results["converged"] is False and results["fit_seconds"] > 0
    assert f"{results['learned_weights'][0]:.4f}" in run.stdout


def test_tensorboard_holds_losses_lr_weights_and_hparams(tensorboard_run):
    run = tensorboard_run
    events = EventAccumulator(str(run.run_dir))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    expected = {"train/loss", "val/loss", "train/lr", "weights/w0", "weights/w1", "weights/bias"}
    assert expected | {"weights/distance_to_true", "hp/max_abs_error", "hp/final_train_loss"} <= tags
    results = run.results
    # Every --log_every_n_epochs: a TensorBoard write each epoch costs a third of a tiny epoch.
    assert [e.step for e in events.Scalars("train/loss")] == [e.step for e in events.Scalars("weights/w0")]
    assert len(events.Scalars("weights/w0")) == 2
    last = lambda tag: events.Scalars(tag)[-1].value  # noqa: E731
    assert last("train/loss") == pytest.approx(results["final_train_loss"], rel=1e-6)
    assert last("weights/w1") == pytest.approx(results["learned_weights"][1], rel=1e-6)
    assert last("weights/bias") == pytest.approx(results["learned_bias"], rel=1e-6)
    assert last("train/lr") == pytest.approx(results["lr"])
    assert last("hp/max_abs_error") == pytest.approx(results["max_abs_error"], rel=1e-6)
    assert "_hparams_/session_start_info" in events.summary_metadata
    # The progress report writes the loss and every weight at the run's last step; Lightning writes validation
    # metrics at the step before. (What a real TensorBoard server serves of such files: runner/test_tensorboard.py.)
    final = results["global_step"]
    assert events.Scalars("train/loss")[-1].step == final
    for i, weight in enumerate(results["learned_weights"]):
        assert events.Scalars(f"weights/w{i}")[-1].step == final and last(f"weights/w{i}") == pytest.approx(
            weight, rel=1e-6
        )
    assert events.Scalars("weights/bias")[-1].step == final and events.Scalars("val/loss")[-1].step == final - 1
    assert last("val/loss") == pytest.approx(results["final_val_loss"], rel=1e-6)


def test_same_seed_same_weights_other_seed_other_weights(train):
    first = train("--max_epochs", "15", "--seed", "3", "--shuffle").results
    again = train("--max_epochs", "15", "--seed", "3", "--shuffle").results
    other = train("--max_epochs", "15", "--seed", "4", "--shuffle").results
    assert first["learned_weights"] == again["learned_weights"]
    assert first["learned_weights"] != other["learned_weights"]


def test_each_run_gets_its_own_version_directory(train):
    train("--max_epochs", "1")
    run = train("--max_epochs", "1")
    assert sorted(p.name for p in (run.root / "lightning_logs").iterdir()) == ["version_0", "version_1"]
    assert json.loads((run.root / "lightning_logs/version_0/results.json").read_text())["epochs"] == 1
