"""What users of the example type from habit: the advice after a run, --help (their callbacks and loggers,
debug flags and subcommands, on any model: tests/runner/test_lightning_habits.py)."""

import pytest


def test_the_advice_fits_the_run(train):
    auto = train("--max_epochs", "2", "--precondition", "none")
    assert "Not recovered" in auto.stdout and "try more epochs." in auto.stdout and "--lr auto" not in auto.stdout
    fixed = train("--max_epochs", "2", "--precondition", "none", "--lr", "1e-6")
    assert "try more epochs or --lr auto" in fixed.stdout


def test_help_opens_with_what_linear_pl_is(train, capsys):
    with pytest.raises(SystemExit) as done:  # argparse's --help exits, in-process as in the script
        train("--help")
    assert done.value.code == 0
    stdout = capsys.readouterr().out
    assert "linear_pl trains any LightningModule on any LightningDataModule" in stdout.split("options:")[0]
    assert "Lightning Trainer command line tool" not in stdout
    assert "--max_epochs" in stdout and "--precondition" in stdout
