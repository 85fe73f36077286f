"""scripts/predict.py on the example: its real-valued predictions are its weights applied to the rows (bad input,
stdin and the predict step of any model: tests/runner/test_predict.py)."""

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


def test_best_checkpoint_predicts_with_the_best_validation_weights(train, capsys):
    run = train("--true_weights", "[1.5, -2, 3]", "--noise_std", "5", "--num_samples", "40", "--max_epochs", "60",
                "--precondition", "none", "--log_every_n_epochs", "5")  # fmt: skip
    results = run.results
    best = torch.load(results["best_checkpoint"], weights_only=True)["state_dict"]["net.weight"]
    status, out, _ = predict(capsys, "--ckpt_path", "best", "--default_root_dir", str(run.root), "--x", "[1, 0, 0]")
    assert status == 0 and out.split() == [f"{best[0].item():.8g}"]
    assert results["best_epoch"] % 5 == 0 and 0 < results["best_epoch"] <= results["epochs"]
