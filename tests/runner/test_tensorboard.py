"""A run's TensorBoard scalars on any model, read back through a real TensorBoard server's HTTP API."""

import pytest

from linear_pl.runner.cli import cli_main
from runner.commands import run_quietly
from runner.lit_classifier import CLASSIFIER


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory):
    """One run of the fixture classifier, validated every epoch, whose event files the server reads."""
    root = tmp_path_factory.mktemp("classifier_run")
    flags = [*CLASSIFIER, "--num_samples", "600", "--max_epochs", "5", "--log_every_n_epochs", "1"]
    run = run_quietly(cli_main, *flags, "--default_root_dir", str(root), root=root)
    assert run.status == 0, run.stderr
    return run


def test_tensorboard_serves_the_final_losses_and_metrics(classifier_run, tensorboard):
    run = classifier_run
    results = run.results
    get = tensorboard(run.run_dir)

    assert get("/data/runs") == ["."]
    tags = get("/data/plugin/scalars/tags")["."]
    assert {"train/loss", "val/loss", "val/acc", "test/acc", "test/loss"} <= set(tags)

    def last(tag: str) -> tuple[int, float]:
        wall_time, step, value = get("/data/plugin/scalars/scalars", run=".", tag=tag)[-1]
        return step, value

    # Every metric the model logged, at the run's last step or the one before, as results.json has it.
    final = results["global_step"]
    assert last("train/loss") == (final - 1, pytest.approx(results["final_train_loss"], rel=1e-6))
    for tag, value in results["metrics"].items():
        step, served = last(tag)
        assert final - 1 <= step <= final and served == pytest.approx(value, rel=1e-6), tag
    assert last("val/loss")[1] == pytest.approx(results["final_val_loss"], rel=1e-6)
    for tag, value in results["test"].items():  # tested once, with best.ckpt
        assert last(tag)[1] == pytest.approx(value, rel=1e-6), tag
