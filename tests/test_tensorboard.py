"""The example's TensorBoard scalars (its weights), read back through a real TensorBoard server's HTTP API
(the server: conftest.py's tensorboard fixture; any model's scalars: tests/test_run_tensorboard.py)."""

import pytest


def test_tensorboard_serves_the_final_loss_and_weights(tensorboard_run, tensorboard):
    run = tensorboard_run
    results = run.results
    get = tensorboard(run.run_dir)

    assert get("/data/runs") == ["."]
    tags = get("/data/plugin/scalars/tags")["."]
    assert {"train/loss", "val/loss", "weights/w0", "weights/w1", "weights/bias"} <= set(tags)

    def last(tag: str) -> tuple[int, float]:
        wall_time, step, value = get("/data/plugin/scalars/scalars", run=".", tag=tag)[-1]
        return step, value

    # The progress report writes the loss and weights at the run's last step.
    final = results["global_step"]
    assert last("train/loss") == (final, pytest.approx(results["final_train_loss"], rel=1e-6))
    for i, weight in enumerate(results["learned_weights"]):
        assert last(f"weights/w{i}") == (final, pytest.approx(weight, rel=1e-6))
    assert last("weights/bias") == (final, pytest.approx(results["learned_bias"], rel=1e-6))
    # Lightning writes validation metrics at the step before.
    assert last("val/loss") == (final - 1, pytest.approx(results["final_val_loss"], rel=1e-6))
