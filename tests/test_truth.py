"""What a run says is true: results.json names only files that exist, and each verdict follows its cause."""

from pathlib import Path

import pytest
from runner.test_run import InterruptAfterEpoch

from linear_pl.runner.cli import cli_main

# --trainer.callbacks+=test_truth.InterruptAfterEpoch: the runner tests' own, named here for this file's flags.
__all__ = ["InterruptAfterEpoch"]


RAW = ["--precondition", "none", "--seed", "1"]  # hundreds of epochs to converge: it stops for other reasons
STOPS = {
    "converged": [],
    "val_plateau": [*RAW, "--patience", "1", "--min_delta", "1e9"],  # no validation counts as better
    "max_epochs": [*RAW, "--max_epochs", "15"],
    "max_time": [*RAW, "--trainer.max_time", "00:00:00:01", "--max_epochs", "100000"],
    "max_steps": [*RAW, "--trainer.max_steps", "25", "--max_epochs", "100000"],  # within an epoch
    "interrupted": [*RAW, "--trainer.callbacks+=test_truth.InterruptAfterEpoch"],
    "diverged": ["--preset", "lntx", "--lr", "5e-4", "--max_epochs", "50", "--log_every_n_epochs", "1"],
}


def paths_in(results: dict) -> list[str]:
    return [v for k, v in results.items() if isinstance(v, str) and (k.endswith(("_checkpoint", "_path", "_dir")))]


@pytest.mark.parametrize("reason", list(STOPS))
def test_every_path_results_json_names_exists_whatever_stopped_the_run(train, reason):
    run = train(*STOPS[reason])
    assert run.status == {"interrupted": 130, "diverged": 1}.get(reason, 0), run.stderr
    results = run.results
    assert results["stopped_because"] == reason
    if reason != "diverged":  # a run that stops with validation data ends validated, so it has a best
        assert results["best_checkpoint"] == str(run.run_dir / "checkpoints" / "best.ckpt")
    for path in paths_in(results):
        assert Path(path).is_file(), (reason, path)


def test_after_the_default_run_best_serves_validate_and_predict(train, capsys):
    # The default run converges at epoch 8, before the first validation at epoch 10: the final
    # validation writes best.ckpt, which the README's next commands use.
    run = train()
    assert run.results["stopped_because"] == "converged" and run.results["best_epoch"] == run.results["epochs"]
    validated = train("validate", "--ckpt_path", "best")
    assert validated.status == 0, validated.stderr
    assert float(validated.stdout.split("val_loss ")[1]) == pytest.approx(run.results["best_val_loss"], rel=1e-5)
    status = cli_main(
        ["predict", "--ckpt_path", "best", "--default_root_dir", str(run.root), "--x", "[1, 1, 1, 1, 1, 1, 1]"]
    )
    assert status == 0
    assert float(capsys.readouterr().out) == pytest.approx(45.0, abs=0.01)  # the sum of the true weights


def verdict_of(run) -> str:
    return run.stdout.strip().splitlines()[-1]


def test_a_debug_limit_on_the_batches_is_named_not_more_epochs(train):
    # Three samples for seven weights: no number of epochs could recover them.
    run = train("--trainer.limit_train_batches", "3")
    assert run.status == 0, run.stderr
    line = verdict_of(run)
    assert line.startswith("Not recovered") and "more epochs" not in line
    assert "--trainer.limit_train_batches 3 trained on 3 samples an epoch, too few to determine 7 weights" in line


def test_a_validation_plateau_advises_patience_not_epochs(train):
    line = verdict_of(train(*STOPS["val_plateau"], "--lr", "1e-6"))
    assert line.startswith("Not recovered") and "more epochs" not in line
    assert "stopped improving for --patience validations; try a larger --patience or --lr auto" in line


def test_max_epochs_advises_more_epochs(train):
    assert verdict_of(train(*STOPS["max_epochs"])).endswith("; try more epochs.")
