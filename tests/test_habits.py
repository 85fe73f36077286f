"""What users of the example type from habit: the advice after a run, --help (their callbacks and loggers,
debug flags and subcommands, on any model: tests/test_run_habits.py)."""


def test_the_advice_fits_the_run(train):
    auto = train("--max_epochs", "2", "--precondition", "none")
    assert "Not recovered" in auto.stdout and "try more epochs." in auto.stdout and "--lr auto" not in auto.stdout
    fixed = train("--max_epochs", "2", "--precondition", "none", "--lr", "1e-6")
    assert "try more epochs or --lr auto" in fixed.stdout


def test_help_opens_with_what_linear_pl_is(script):
    run = script("train", "--help")
    assert run.status == 0
    assert "linear_pl trains any LightningModule on any LightningDataModule" in run.stdout.split("options:")[0]
    assert "Lightning Trainer command line tool" not in run.stdout
    assert "--max_epochs" in run.stdout and "--precondition" in run.stdout
