"""scripts/predict.py: predictions from a checkpoint, and one clear line for bad input."""

import io

import pytest
import torch

from linear_pl.runner.cli import cli_main


@pytest.fixture
def trained(train):
    run = train("--true_weights", "[1.5, -2, 3]", "--true_bias", "0.5", "--bias", "--num_samples", "20",
                "--max_epochs", "5")  # fmt: skip
    # The weights in raw units (the default run trains on preconditioned inputs).
    return run, torch.tensor(run.results["learned_weights"]), torch.tensor(run.results["learned_bias"])


def predict(capsys, *flags):
    status = cli_main(["predict", *flags])
    out, err = capsys.readouterr()
    return status, out, err


def test_predictions_equal_the_models_forward(trained, capsys, tmp_path):
    run, weight, bias = trained
    rows = torch.tensor([[1.0, 1.0, 1.0], [2.0, 0.0, 1.0]])
    expected = [f"{v:.8g}" for v in (rows @ weight + bias).tolist()]
    common = ["--ckpt_path", "last", "--default_root_dir", str(run.root)]

    status, out, _ = predict(capsys, *common, "--x", "[1, 1, 1]")
    assert status == 0 and out.split() == expected[:1]

    output = tmp_path / "predictions.csv"
    status, out, _ = predict(capsys, *common, "--x", "[[1, 1, 1], [2, 0, 1]]", "--output", str(output))
    assert status == 0 and out.split() == expected and output.read_text().split() == expected

    csv = tmp_path / "rows.csv"
    csv.write_text("1,1,1\n2, 0, 1\n")
    ckpt = run.run_dir / "checkpoints" / "last.ckpt"
    assert predict(capsys, "--ckpt_path", str(ckpt), "--input", str(csv))[1].split() == expected


def test_stdin_input(trained, capsys, monkeypatch):
    run, weight, bias = trained
    monkeypatch.setattr("sys.stdin", io.StringIO("1,1,1\n"))
    status, out, _ = predict(capsys, "--ckpt_path", "last", "--default_root_dir", str(run.root), "--input", "-")
    assert status == 0 and out.split() == [f"{(weight.sum() + bias).item():.8g}"]


@pytest.mark.parametrize(
    ("x", "problem"),
    [("[1, 1]", "row 1 has 2 values"), ("[[1, 1, 1], [1, 2]]", "row 2 has 2 values"), ("[1, a, 1]", "row 1 is"),
     ("[1, .nan, 1]", "row 1 is"), ("[1, .inf, 1]", "row 1 is"), ("[]", "row 1 has 0 values")],
)  # fmt: skip
def test_bad_rows_are_one_line_naming_the_expected_shape(trained, capsys, x, problem):
    run = trained[0]
    status, out, err = predict(capsys, "--ckpt_path", "last", "--default_root_dir", str(run.root), "--x", x)
    assert status == 2 and out == "" and err.count("\n") == 1
    assert problem in err and "expected rows of 3 finite numbers (shape [N, 3])" in err


def test_missing_run_and_broken_checkpoint(capsys, tmp_path):
    status, _, err = predict(capsys, "--ckpt_path", "last", "--default_root_dir", str(tmp_path), "--x", "[1]")
    assert status == 2 and "no earlier run" in err
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"\x00" * 10)
    status, _, err = predict(capsys, "--ckpt_path", str(broken), "--x", "[1]")
    assert status == 2 and err.count("\n") == 1 and "not a usable checkpoint" in err


def test_best_checkpoint_predicts_with_the_best_validation_weights(train, capsys):
    run = train("--true_weights", "[1.5, -2, 3]", "--noise_std", "5", "--num_samples", "40", "--max_epochs", "60",
                "--precondition", "none", "--log_every_n_epochs", "5")  # fmt: skip
    results = run.results
    best = torch.load(results["best_checkpoint"], weights_only=True)["state_dict"]["net.weight"]
    status, out, _ = predict(capsys, "--ckpt_path", "best", "--default_root_dir", str(run.root), "--x", "[1, 0, 0]")
    assert status == 0 and out.split() == [f"{best[0].item():.8g}"]
    assert results["best_epoch"] % 5 == 0 and 0 < results["best_epoch"] <= results["epochs"]
