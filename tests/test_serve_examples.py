"""``serve --format pt2|onnx`` on the example (the default regression) and on ``examples/digits.py``'s CNN: the
export of the checkpoint answers through the model's own ``predict_step`` what ``predict`` prints for the same
inputs. (tests/runner/test_serve.py tests the server itself on the fixture classifier, eager.)

The regression's export is written by ``export``; the CNN's .onnx here, by torch.onnx.export as ``export`` writes
it, without the checks ``export`` makes of it (tests/test_export.py)."""

import json
from pathlib import Path

import pytest
import torch
from runner.commands import ROOT, run_quietly
from runner.test_serve import lines_of, start_server

from linear_pl.runner.cli import cli_main
from linear_pl.runner.export import sha256


@pytest.fixture(autouse=True)
def from_the_repository(monkeypatch):
    """Class paths like examples.digits.DigitsCNN are imported from the current directory, as a user runs them."""
    monkeypatch.chdir(ROOT)


def write_onnx(checkpoint: Path, model: torch.nn.Module, example: torch.Tensor) -> None:
    """export/model.onnx with a dynamic batch dimension, and export.json with the checkpoint's sha256."""
    export = checkpoint.parents[1] / "export"
    export.mkdir()
    batch = {0: torch.export.Dim("batch")}
    torch.onnx.export(model, (example,), export / "model.onnx", dynamo=True, dynamic_shapes=(batch,), verbose=False)
    (export / "export.json").write_text(json.dumps({"checkpoint": {"sha256": sha256(checkpoint)}}))


def trained(tmp_path: Path, *flags: str) -> Path:
    run = run_quietly(cli_main, *flags, "--default_root_dir", str(tmp_path), root=tmp_path)
    assert run.status == 0, run.stderr
    return run.run_dir / "checkpoints" / "last.ckpt"


def test_the_regression_example_served_from_its_pt2(tmp_path):
    checkpoint = trained(tmp_path, "--max_epochs", "5")
    exported = run_quietly(cli_main, "export", "--ckpt_path", str(checkpoint), root=tmp_path)
    assert exported.status == 0, exported.stderr
    rows = [[float(v) for v in range(1 + i, 8 + i)] for i in range(5)]
    server = start_server("--ckpt_path", str(checkpoint), "--format", "pt2", cwd=tmp_path)
    try:
        assert "(pt2, cpu," in server.stdout[0] and server.stdout[1].startswith("ready: ")
        status, answer = server.post({"x": rows})
    finally:
        stopped = server.stop()
    printed = run_quietly(cli_main, "predict", "--ckpt_path", str(checkpoint), "--x", json.dumps(rows), root=tmp_path)
    assert status == 200 and stopped.status == 0
    expected = [float(line) for line in printed.stdout.split()]
    assert answer["predictions"] == pytest.approx(expected, rel=1e-5)


def test_the_digits_cnn_served_from_its_onnx(tmp_path):
    from examples.digits import Digits, DigitsCNN  # noqa: PLC0415

    flags = ["--model", "examples.digits.DigitsCNN", "--data", "examples.digits.Digits", "--max_epochs", "1",
             "--trainer.limit_train_batches", "2"]  # fmt: skip
    checkpoint = trained(tmp_path, *flags)
    model = DigitsCNN.load_from_checkpoint(checkpoint, weights_only=True).eval()
    data = Digits()
    data.setup("predict")
    images = data.predict_set.tensors[0][:32]
    write_onnx(checkpoint, model, images[:3])
    server = start_server("--ckpt_path", str(checkpoint), "--format", "onnx", cwd=ROOT, logs=tmp_path)
    try:
        assert "(onnx, cpu," in server.stdout[0] and server.stdout[1].startswith("ready: ")
        status, answer = server.post({"x": images.tolist()})
        one = server.post({"x": images[0].tolist()})  # one image, nested lists [1, 8, 8]
    finally:
        stopped = server.stop()
    printed = run_quietly(cli_main, "predict", "--ckpt_path", str(checkpoint), root=tmp_path)  # its predict loader
    assert status == 200 and stopped.status == 0
    assert lines_of(answer["predictions"]) == printed.stdout.split("\n")[:32]
    assert one == (200, {"predictions": answer["predictions"][:1]})
