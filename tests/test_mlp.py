"""The second model, picked by name through the same CLI: an MLP on a target no dot product can fit."""

from importlib.metadata import entry_points

import pytest

from linear_pl.__main__ import main
from linear_pl.regression.data import SyntheticDataModule

MLP_SINE = ["--preset", "mlp-sine", "--max_epochs", "60", "--log_every_n_epochs", "20"]


def test_mlp_beats_the_best_linear_fit_on_the_sine_target(train):
    run = train(*MLP_SINE)
    assert run.status == 0, run.stderr
    results = run.results
    assert results["model"] == "MLPModel" and results["target"] == "sine"
    # No weights to report for an MLP; the losses always.
    assert results["learned_weights"] is None and results["max_abs_error"] is None
    assert "Initial weights" not in run.stdout
    # least_squares_val_loss is the best any linear model reaches on this data (about 80 here);
    # the MLP ends far below it (about 5 after 60 epochs).
    assert results["final_val_loss"] < results["least_squares_val_loss"] / 5
    assert "the least-squares fit's" in run.stdout

    # The linear model, trained on the same data, cannot get below the least-squares loss.
    linear = train("--preset", "mlp-sine", "--model", "linear", "--bias", "--max_epochs", "20").results
    assert linear["least_squares_val_loss"] == pytest.approx(results["least_squares_val_loss"])
    assert linear["final_val_loss"] > results["least_squares_val_loss"] * 0.9


def test_targets_are_the_documented_functions():
    for target, f in [("quadratic", lambda z: z**2), ("sine", lambda z: __import__("math").sin(3.141592653589793 * z))]:
        dm = SyntheticDataModule([2.0, 3.0], num_samples=50, low=0, high=10, target=target)
        dm.setup()
        x, y = dm.train_x.double(), dm.train_y.double()
        z = (x - 5) / 5
        expected = 2 * z[:, 0].apply_(f) + 3 * z[:, 1].apply_(f)
        assert y.tolist() == pytest.approx(expected.tolist(), abs=1e-5)


def test_mlp_checkpoint_resumes_and_predicts(train):
    first = train("--model", "mlp", "--num_samples", "200", "--batch_size", "20", "--max_epochs", "3")
    resumed = train("--model", "mlp", "--num_samples", "200", "--batch_size", "20", "--max_epochs", "5",
                    "--ckpt_path", "last")  # fmt: skip
    assert (first.status, resumed.status) == (0, 0)
    assert resumed.results["epochs"] == 5 and resumed.results["global_step"] == 50

    ckpt = resumed.run_dir / "checkpoints" / "last.ckpt"
    predicted = train("predict", "--ckpt_path", str(ckpt), "--x", "[[1, 2, 3, 4, 5, 6, 7], [9, 9, 9, 9, 9, 9, 9]]")
    assert predicted.status == 0, predicted.stderr
    values = [float(v) for v in predicted.stdout.split()]
    assert len(values) == 2 and values[0] != values[1]


def test_mlp_without_a_validation_set_reports_its_training_loss(train, recwarn):
    run = train("--model", "mlp", "--num_samples", "50", "--num_val_samples", "0", "--max_epochs", "2")
    assert run.status == 0, run.stderr
    assert not [str(w.message) for w in recwarn], "no validation set is a choice, not worth a warning"
    results = run.results
    assert results["final_val_loss"] is None and results["least_squares_val_loss"] is None
    assert results["monitor"] == "train/loss" and results["best_value"] == results["final_train_loss"]
    assert f"After 2 epochs (max_epochs): best train/loss {results['final_train_loss']:.4g} (epoch 2)." in run.stdout
    assert "note: no validation data: best.ckpt and early stopping watch train/loss" in run.stderr


def test_hidden_sizes_are_checked(train):
    run = train("--model", "mlp", "--hidden_sizes", "[]")
    assert run.status == 2
    assert run.stderr.strip() == "error: --hidden_sizes []: must be a non-empty list of integers >= 1"
    assert not (run.root / "lightning_logs").exists()


def test_linear_pl_command_fits_and_predicts(tmp_path, capsys):
    # The installed command is this function (pyproject.toml's [project.scripts]), which the tests call.
    (command,) = entry_points(group="console_scripts", name="linear-pl")
    assert command.load() is main
    assert main(["fit", "--max_epochs", "5", "--seed", "1"]) == 0
    fit = capsys.readouterr()
    assert "Epoch [5/5]" in fit.out and (tmp_path / "lightning_logs" / "version_0" / "results.json").is_file()
    assert main(["predict", "--ckpt_path", "last", "--x", "[1, 0, 0, 0, 0, 0, 0]"]) == 0, capsys.readouterr().err
    assert len(capsys.readouterr().out.split()) == 1
    assert main(["train"]) == 2
    choices = "fit, validate, test, predict, export, serve or sweep"
    assert capsys.readouterr().err.startswith(f"error: train: choose {choices}")


def test_on_exactly_linear_data_the_verdict_says_so_instead_of_a_ratio(train):
    run = train("--model", "mlp", "--num_samples", "200", "--batch_size", "20", "--max_epochs", "2")
    assert run.status == 0, run.stderr
    assert run.results["least_squares_val_loss"] < 1e-6  # noise-free y = x @ w
    assert run.stdout.rstrip().endswith("a linear model fits this data exactly.")
