"""``train.py export`` on the example and the digits CNN, and the exported files loaded as docs/runs.md shows, in a
fresh interpreter that cannot import Lightning or linear_pl (what an export checks and says, on any model:
tests/runner/test_export.py)."""

import json
import re
import subprocess
import sys

import pytest
import torch
from runner.commands import ROOT, Run, assert_clean, process_env, run_quietly, script_command

from linear_pl.runner.cli import build_run, cli_main

# The lines to load each format, as docs/runs.md's Export section shows them (its ```python blocks).
DOCS = ROOT / "docs" / "runs.md"
# Run first in the fresh interpreter: any import of these fails there, as where they are not installed.
WITHOUT_THIS_PROJECT = """
import sys

class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {"lightning", "pytorch_lightning", "lightning_fabric", "linear_pl"}:
            raise ImportError(f"No module named {name!r}")

sys.meta_path.insert(0, NotInstalled())
"""
# Run after a block: what it computed, for the comparison with the eager model.
SAY = """
import json
print(json.dumps({"x": x.tolist(), "y": y.tolist()}))
print(sorted(m for m in sys.modules if m.partition(".")[0] in {"lightning", "linear_pl"}), file=sys.stderr)
"""


def load_snippets() -> list[str]:
    section = DOCS.read_text().split("\n## Export\n")[1].split("\n## ")[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The example trained (in this process), then exported as a user runs it (a process: all it prints)."""
    root = tmp_path_factory.mktemp("example")
    fit = run_quietly(cli_main, "--max_epochs", "2", "--default_root_dir", str(root), root=root)
    assert fit.status == 0, fit.stderr
    done = subprocess.run(script_command("train", "export", "--ckpt_path", "best"), cwd=root, capture_output=True,
                          text=True, env=process_env(PYTHONWARNINGS="default"), timeout=600)  # fmt: skip
    return fit, Run(done.returncode, done.stdout, done.stderr, root)


def test_the_example_exports_within_the_tolerance_its_output_clean(example):
    fit, run = example
    assert run.status == 0, run.stderr
    assert_clean(run)
    report = json.loads((fit.run_dir / "export" / "export.json").read_text())
    # The example has no test split: its validation split's 10 samples, in one batch.
    assert report["inputs_from"] == "validation" and report["input"] == {"shape": ["batch", 7], "dtype": "float32"}
    for name in ("model.pt2", "model.onnx"):
        diffs = report["formats"][name]["max_diff"]
        assert list(diffs) == ["1", "2", "7", "10"] and all(d["rel"] <= 1e-5 for d in diffs.values()), diffs
        assert report["metrics"][name]["val/loss"] == pytest.approx(report["metrics"]["eager"]["val/loss"], rel=1e-2)
    assert run.stdout.splitlines()[0] == "lightning_logs/version_0/export: batches from validation, sizes 1, 2, 7, 10"


def test_the_docs_lines_load_each_format_without_lightning_or_linear_pl(example):
    fit, run = example
    assert run.status == 0, run.stderr
    model = build_run(["predict", "--ckpt_path", "best", "--default_root_dir", str(fit.root)]).model.eval()
    snippets = load_snippets()
    assert len(snippets) == 2 and "onnxruntime.InferenceSession" in snippets[0] and "torch.export.load" in snippets[1]
    for snippet in snippets:
        done = subprocess.run([sys.executable, "-I", "-c", WITHOUT_THIS_PROJECT + snippet + SAY], cwd=fit.root,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0 and done.stderr == "[]\n", done.stderr
        said = json.loads(done.stdout)
        with torch.no_grad():
            eager = model(torch.tensor(said["x"]))
        torch.testing.assert_close(torch.tensor(said["y"]), eager, rtol=1e-3, atol=1e-5)


def test_the_digits_cnn_exports_within_the_tolerance(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)  # examples.digits is imported from the repository, as a user runs it
    digits = ["--model", "examples.digits.DigitsCNN", "--data", "examples.digits.Digits", "--channels", "4"]
    assert cli_main([*digits, "--max_epochs", "1", "--default_root_dir", str(tmp_path)]) == 0
    capsys.readouterr()
    assert cli_main(["export", "--ckpt_path", "best", "--default_root_dir", str(tmp_path)]) == 0, capsys.readouterr()
    report = json.loads(next(tmp_path.glob("lightning_logs/version_0/export/export.json")).read_text())
    assert report["inputs_from"] == "test" and report["input"] == {"shape": ["batch", 1, 8, 8], "dtype": "float32"}
    eager = report["metrics"]["eager"]
    for name in ("model.pt2", "model.onnx"):
        diffs = report["formats"][name]["max_diff"]
        assert list(diffs) == ["1", "2", "7", "64"] and all(d["abs"] <= 1e-4 for d in diffs.values()), diffs
        assert report["metrics"][name]["test/acc"] == pytest.approx(eager["test/acc"], abs=1 / 270)  # a sample
