"""``train.py export`` on the fixture classifier: both formats within the tolerance at four batch sizes, export.json,
and what a failed export says and leaves (on the example and the digits CNN, and loaded without this project:
tests/test_export.py)."""

import hashlib
import importlib
import inspect
import json
import shutil
import sys

import pytest
import torch
from torch.utils.data import DataLoader

from linear_pl.runner.cli import cli_main
from linear_pl.runner.errors import UsageError
from linear_pl.runner.export_check import BATCH, batch_sizes, check_stays_dynamic
from runner.commands import run_quietly
from runner.lit_classifier import CLASSIFIER, Blobs, Classifier

EXTRA = ("onnx", "onnxscript", "onnxruntime")


class BranchOnData(Classifier):
    """A forward torch.export cannot trace: which branch runs depends on the input's values."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return self.net(x)
        return -self.net(x)


class FixedBatch(Classifier):
    """A forward that only works for a batch of 32: torch.export would make the batch dimension that constant."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) + torch.zeros(32, 1, device=x.device)


class OffByOne(Classifier):
    """A forward whose exported program adds 1 to the eager model's output (torch.compiler.is_exporting)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) + 1.0 if torch.compiler.is_exporting() else self.net(x)


class DictBatches(Blobs):
    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_set, batch_size=8, collate_fn=lambda rows: {"x": torch.stack([r[0] for r in rows])})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The classifier trained once, with the export extra unimportable (a fit never imports it), then exported."""
    root = tmp_path_factory.mktemp("export")
    with pytest.MonkeyPatch.context() as patch:
        for name in EXTRA:
            patch.setitem(sys.modules, name, None)
        fit = run_quietly(cli_main, *CLASSIFIER, "--num_samples", "600", "--max_epochs", "2", "--default_root_dir",
                          str(root), root=root)  # fmt: skip
    assert fit.status == 0, fit.stderr
    export = run_quietly(cli_main, "export", "--ckpt_path", "best", "--default_root_dir", str(root), root=root)
    return fit, export


def as_model(trained, cls: type, into) -> str:
    """The trained checkpoint as one of ``cls``, in ``into`` (no run directory: --data names the data)."""
    checkpoint = torch.load(trained[0].run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    checkpoint["hyper_parameters"]["_class_path"] = f"{cls.__module__}.{cls.__qualname__}"
    into.mkdir()
    torch.save(checkpoint, into / "model.ckpt")
    return str(into / "model.ckpt")


def export(capsys, *flags):
    status = cli_main(["export", *flags])
    out, err = capsys.readouterr()
    return status, out, err


def test_both_formats_match_the_model_at_four_batch_sizes_and_export_json_says_so(trained):
    fit, run = trained
    assert run.status == 0, run.stderr
    folder = fit.run_dir / "export"
    assert sorted(p.name for p in folder.iterdir()) == ["export.json", "model.onnx", "model.pt2"]
    assert not list(fit.run_dir.glob(".export*"))  # nothing left of the temporary folder
    report = json.loads((folder / "export.json").read_text())
    assert report["versions"] == {
        name: importlib.import_module(name).__version__ for name in ("torch", "onnx", "onnxruntime")
    }
    assert isinstance(report["opset"], int) and report["opset"] >= 18
    assert report["input"] == {"shape": ["batch", 2], "dtype": "float32"}
    best = fit.run_dir / "checkpoints" / "best.ckpt"
    assert report["checkpoint"]["sha256"] == hashlib.sha256(best.read_bytes()).hexdigest()
    assert report["inputs_from"] == "test" and report["tolerance"] == {"rtol": 1e-3, "atol": 1e-5}
    for name in ("model.pt2", "model.onnx"):
        diffs = report["formats"][name]["max_diff"]
        assert list(diffs) == ["1", "2", "7", "32"]  # 32: the test loader's batch size
        assert all(d["abs"] <= 1e-5 and d["rel"] >= 0 for d in diffs.values()), diffs
    # The model's own test step through each format: eager's is the fit's own test of best.ckpt.
    eager = report["metrics"]["eager"]
    assert eager == pytest.approx(fit.results["test"], abs=1e-6)
    for name in ("model.pt2", "model.onnx"):
        assert report["metrics"][name]["test/acc"] == pytest.approx(eager["test/acc"], abs=1 / 120)  # a sample
        assert report["metrics"][name]["test/loss"] == pytest.approx(eager["test/loss"], rel=1e-4)
    lines = run.stdout.splitlines()
    assert lines[0] == f"{folder}: batches from test, sizes 1, 2, 7, 32" and len(lines) == 4
    assert lines[1].startswith("model.pt2   max abs diff ") and "test/acc" in lines[1]
    # The saved program, loaded by torch alone, is the checkpoint's model at a batch size it was not run at.
    model = Classifier.load_from_checkpoint(best, weights_only=True).eval()
    x = torch.randn(5, 2)
    with torch.no_grad():
        torch.testing.assert_close(torch.export.load(folder / "model.pt2").module()(x), model(x))


def test_rows_given_replace_the_previous_export(trained, capsys, tmp_path):
    copy = as_model(trained, Classifier, tmp_path / "copy")
    shutil.copytree(trained[0].run_dir / "export", tmp_path / "copy" / "export")
    status, out, err = export(capsys, "--ckpt_path", copy, "--data", CLASSIFIER[3], "--x", "[[1, 1], [2, 0], [-4, 3]]")
    assert status == 0, err
    report = json.loads((tmp_path / "copy" / "export" / "export.json").read_text())
    assert report["inputs_from"] == "rows" and list(report["formats"]["model.onnx"]["max_diff"]) == ["1", "2", "3", "7"]
    assert report["metrics"] == {"eager": None, "model.pt2": None, "model.onnx": None}  # rows have no labels
    assert sorted(p.name for p in (tmp_path / "copy").iterdir()) == ["export", "model.ckpt"]


def test_outside_the_tolerance_is_one_line_exit_1_and_the_previous_export_is_kept(trained, capsys, tmp_path):
    checkpoint = as_model(trained, OffByOne, tmp_path / "off")
    shutil.copytree(trained[0].run_dir / "export", tmp_path / "off" / "export")
    before = {p.name: p.read_bytes() for p in (tmp_path / "off" / "export").iterdir()}
    tolerance = ["--rtol", "0", "--atol", "0.5"]
    status, out, err = export(capsys, "--ckpt_path", checkpoint, "--data", CLASSIFIER[3], *tolerance)
    assert (status, out) == (1, "")
    assert err == "error: model.pt2 at batch 1: max abs diff 1 exceeds atol 0.5 + rtol 0 * |eager|\n"
    assert {p.name: p.read_bytes() for p in (tmp_path / "off" / "export").iterdir()} == before
    assert sorted(p.name for p in (tmp_path / "off").iterdir()) == ["export", "model.ckpt"]


def test_what_torch_export_refuses_is_one_line_naming_the_forwards_line_exit_2(trained, capsys, tmp_path):
    status, out, err = export(capsys, "--ckpt_path", as_model(trained, BranchOnData, tmp_path / "b"), "--data",
                              CLASSIFIER[3])  # fmt: skip
    lines, first = inspect.getsourcelines(BranchOnData.forward)
    where = f"{inspect.getsourcefile(BranchOnData)}:{first + 1}: if x.sum() > 0:"
    assert (status, out) == (2, "") and err.count("\n") == 1, err
    assert err.startswith("error: torch.export refused BranchOnData.forward: Could not guard on data-dependent")
    assert err.endswith(f"(at {where})\n"), err
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["model.ckpt"]


def test_a_batch_dimension_made_constant_is_said_exit_2(trained, capsys, tmp_path):
    status, out, err = export(capsys, "--ckpt_path", as_model(trained, FixedBatch, tmp_path / "f"), "--data",
                              CLASSIFIER[3])  # fmt: skip
    assert (status, out) == (2, "")
    assert err == (
        "error: torch.export refused FixedBatch.forward: its batch dimension became the constant 32: the program "
        "would take no other batch size\n"
    )
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["model.ckpt"]


def test_unreadable_batches_a_negative_tolerance_and_a_missing_extra_are_one_line_exit_2(
    trained, capsys, tmp_path, monkeypatch
):
    checkpoint = as_model(trained, Classifier, tmp_path / "d")
    status, out, err = export(capsys, "--ckpt_path", checkpoint, "--data", "runner.test_export.DictBatches")
    assert (status, out) == (2, "")
    assert err == (
        "error: export: the test loader's batches are dict; export supports a tensor batch or a tuple/list whose "
        "first element is the model's input tensor [batch, ...]\n"
    )
    status, out, err = export(capsys, "--ckpt_path", checkpoint, "--data", CLASSIFIER[3], "--rtol", "-0.1")
    assert (status, out, err) == (2, "", "error: --rtol -0.1 --atol 1e-05: each must be >= 0\n")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    status, out, err = export(capsys, "--ckpt_path", checkpoint, "--data", CLASSIFIER[3])
    assert (status, out, err) == (2, "", "error: export needs onnxruntime: pip install 'linear_pl[export]'\n")
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["model.ckpt"]


def test_a_program_whose_batch_is_constant_or_bounded_is_caught_after_export():
    """torch.export.Dim("batch") makes torch refuse a forward that fixes the batch (above). A program exported
    otherwise (no dynamic dimension, Dim.AUTO, which specializes silently, a minimum of 2) is caught after."""
    inputs = {n: torch.randn(n, 2) for n in batch_sizes(32)}
    static = torch.export.export(Classifier().eval(), (inputs[32],))
    with pytest.raises(UsageError, match=r"^model\.pt2: the batch dimension became the constant 32: "):
        check_stays_dynamic(static, inputs)
    auto = torch.export.export(FixedBatch().eval(), (inputs[32],), dynamic_shapes=({0: torch.export.Dim.AUTO},))
    with pytest.raises(UsageError, match=r"^model\.pt2 at batch 1: the program refuses it \(.*== 32\): its batch "):
        check_stays_dynamic(auto, inputs)
    at_least_2 = torch.export.Dim("batch", min=2)
    bounded = torch.export.export(Classifier().eval(), (inputs[32],), dynamic_shapes=({0: at_least_2},))
    with pytest.raises(UsageError, match=r"^model\.pt2: the batch dimension starts at 2: "):
        check_stays_dynamic(bounded, inputs)
    check_stays_dynamic(torch.export.export(Classifier().eval(), (inputs[32],), dynamic_shapes=({0: BATCH},)), inputs)
