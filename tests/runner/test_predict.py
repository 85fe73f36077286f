"""scripts/predict.py on any model: its predict_step over rows from a checkpoint, and one clear line for bad input."""

import io

import pytest
import torch

from linear_pl.runner.cli import cli_main
from runner.lit_classifier import CLASSIFIER, Classifier


@pytest.fixture
def trained(train):
    run = train(*CLASSIFIER, "--num_samples", "600", "--max_epochs", "3")
    assert run.status == 0, run.stderr
    return run, Classifier.load_from_checkpoint(run.run_dir / "checkpoints" / "last.ckpt", weights_only=True).eval()


def predict(capsys, *flags):
    status = cli_main(["predict", *flags])
    out, err = capsys.readouterr()
    return status, out, err


def test_predictions_equal_the_models_forward(trained, capsys, tmp_path):
    run, model = trained
    rows = torch.tensor([[1.0, 1.0], [2.0, 0.0], [-4.0, 3.0]])
    with torch.no_grad():
        expected = [str(c) for c in model(rows).argmax(dim=1).tolist()]
    common = ["--ckpt_path", "last", "--default_root_dir", str(run.root)]

    status, out, _ = predict(capsys, *common, "--x", "[1, 1]")
    assert status == 0 and out.split() == expected[:1]

    output = tmp_path / "predictions.csv"
    status, out, _ = predict(capsys, *common, "--x", "[[1, 1], [2, 0], [-4, 3]]", "--output", str(output))
    assert status == 0 and out.split() == expected and output.read_text().split() == expected

    csv = tmp_path / "rows.csv"
    csv.write_text("1,1\n2, 0\n-4,3\n")
    ckpt = run.run_dir / "checkpoints" / "last.ckpt"
    assert predict(capsys, "--ckpt_path", str(ckpt), "--input", str(csv))[1].split() == expected


def test_stdin_input(trained, capsys, monkeypatch):
    run, model = trained
    monkeypatch.setattr("sys.stdin", io.StringIO("1,1\n"))
    status, out, _ = predict(capsys, "--ckpt_path", "last", "--default_root_dir", str(run.root), "--input", "-")
    with torch.no_grad():
        assert status == 0 and out.split() == [str(model(torch.tensor([[1.0, 1.0]])).argmax(dim=1).item())]


@pytest.mark.parametrize(
    ("x", "problem"),
    [("[1, 1, 1]", "row 1 has 3 values"), ("[[1, 1], [1]]", "row 2 has 1 values"), ("[1, a]", "row 1 is"),
     ("[1, .nan]", "row 1 is"), ("[1, .inf]", "row 1 is"), ("[]", "row 1 has 0 values")],
)  # fmt: skip
def test_bad_rows_are_one_line_naming_the_expected_shape(trained, capsys, x, problem):
    run = trained[0]
    status, out, err = predict(capsys, "--ckpt_path", "last", "--default_root_dir", str(run.root), "--x", x)
    assert status == 2 and out == "" and err.count("\n") == 1
    assert problem in err and "expected rows of 2 finite numbers (shape [N, 2])" in err


def test_missing_run_and_broken_checkpoint(capsys, tmp_path):
    status, _, err = predict(capsys, "--ckpt_path", "last", "--default_root_dir", str(tmp_path), "--x", "[1]")
    assert status == 2 and "no earlier run" in err
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"\x00" * 10)
    status, _, err = predict(capsys, "--ckpt_path", str(broken), "--x", "[1]")
    assert status == 2 and err.count("\n") == 1 and "not a usable checkpoint" in err


def test_best_checkpoint_predicts_with_the_best_validation_weights(train, capsys):
    # A wide spread of the classes and a large rate: the validation loss goes up and down, and best is not last.
    run = train(*CLASSIFIER, "--num_samples", "300", "--spread", "3", "--lr", "0.05", "--max_epochs", "30",
                "--patience", "null", "--log_every_n_epochs", "5")  # fmt: skip
    assert run.status == 0, run.stderr
    results = run.results
    best = Classifier.load_from_checkpoint(results["best_checkpoint"], weights_only=True).eval()
    rows = torch.randn(50, 2, generator=torch.Generator().manual_seed(0)) * 4
    with torch.no_grad():
        expected = [str(c) for c in best(rows).argmax(dim=1).tolist()]
    status, out, _ = predict(capsys, "--ckpt_path", "best", "--default_root_dir", str(run.root), "--x",
                             str(rows.tolist()))  # fmt: skip
    assert status == 0 and out.split() == expected
    assert results["best_epoch"] % 5 == 0 and 0 < results["best_epoch"] <= results["epochs"]
