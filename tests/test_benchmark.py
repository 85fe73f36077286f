"""The benchmark (benchmarks/, ``python -m benchmarks``) runs and reports what it measured, and writes it into its
page (its speed goals are not tested: noisy). It runs in this process. Its sections time commands in processes of
their own; here, but for scale's (which times processes and imports), those commands run in this process too
(``in_process``): what a section makes of its measurements is what is tested, not the cost of a new process."""

import io
import json
import os
import runpy
import subprocess
import sys
import time
import warnings
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from benchmarks.cli import main
from benchmarks.flags import SECTIONS, parse_flags
from benchmarks.measure import peak_rss_bytes
from benchmarks.page import markers
from linear_pl.runner.cli import cli_main
from linear_pl.sweep import main as sweep_main

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Run:
    status: int
    stdout: str
    stderr: str


@pytest.fixture
def benchmark(capsys):
    """``benchmark(*flags)``: ``python -m benchmarks`` in this process, in tmp_path."""

    def run(*flags: str) -> Run:
        status = main(list(flags))
        out, err = capsys.readouterr()
        return Run(status, out, err)

    return run


@pytest.fixture
def in_process(monkeypatch):
    """The sections' commands in this process: ``run_command``'s scripts (train.py and sweep.py as their
    functions, others by runpy) and ``python -c CODE`` (larger's ways, files' polars read), what they print
    captured. Seconds and peak RSS are this process's."""
    real_run = subprocess.run
    mains = {"train.py": cli_main, "sweep.py": sweep_main}

    def in_this_process(argv: list[str], cwd=None, env=None) -> str:
        out, err = io.StringIO(), io.StringIO()
        # A command's warnings went to its own stderr, which the section never shows.
        with monkeypatch.context() as m, redirect_stdout(out), redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m.chdir(cwd or os.getcwd())
            for name, value in (env or {}).items():
                m.setenv(name, value)
            if argv[0] == "-c":
                m.setattr(sys, "argv", argv[1:])
                exec(argv[1], {"__name__": "__main__"})  # noqa: S102 -- the section's own code
            elif Path(argv[0]).name in mains:
                status = mains[Path(argv[0]).name](argv[1:])
            else:
                m.setattr(sys, "argv", argv)
                runpy.run_path(argv[0], run_name="__main__")
        assert argv[0] == "-c" or Path(argv[0]).name not in mains or status == 0, err.getvalue()
        return out.getvalue()

    def run_command(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, int]:
        assert command[0] == sys.executable
        start = time.perf_counter()
        in_this_process(command[1:], cwd, env)
        return time.perf_counter() - start, peak_rss_bytes()

    def run(command, *args, **kwargs):
        if command[:2] != [sys.executable, "-c"]:
            return real_run(command, *args, **kwargs)
        out = in_this_process(command[1:], kwargs.get("cwd"))
        return subprocess.CompletedProcess(command, 0, out if kwargs.get("text") else out.encode(), "")

    for section in ("answer", "files", "sweep"):
        monkeypatch.setattr(f"benchmarks.{section}.run_command", run_command)
    monkeypatch.setattr(subprocess, "run", run)


def test_floor_reports_three_ways_on_a_custom_workload(benchmark, tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # --one_thread sets it (restored after the test)
    threads = torch.get_num_threads()
    try:
        run = benchmark("--section", "floor", "--size", "40,3,4,3", "--repeats", "1", "--accelerator", "cpu",
                        "--one_thread", "--json", "b.json")  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert run.status == 0, run.stderr
    report = json.loads((tmp_path / "b.json").read_text())
    (row,) = report["floor"]
    assert (row["num_samples"], row["num_features"], row["batch_size"], row["epochs"]) == (40, 3, 4, 3)
    speeds = row["samples_per_second"]
    assert set(speeds) == {"plain", "bare", "linear_pl"} and all(v > 0 for v in speeds.values())
    assert row["linear_pl_over_bare"] == pytest.approx(speeds["linear_pl"] / speeds["bare"])
    assert row["data_bytes"] == (40 * 4 + 10 * 4) * 4  # float32 x and y, training and validation
    assert "answer" not in report and "scale" not in report
    assert "custom" in run.stdout and "pl/bare" in run.stdout
    assert (report["threads"], report["threads_from"]) == (1, "OMP_NUM_THREADS=1")  # --one_thread, said so
    assert run.stdout.splitlines()[1] == "threads: 1 (OMP_NUM_THREADS=1)"


def test_classifier_trains_the_digits_example_both_ways(benchmark, tmp_path):
    run = benchmark("--section", "classifier", "--epochs", "1", "--repeats", "1", "--accelerator", "cpu",
                 "--json", "c.json")  # fmt: skip
    assert run.status == 0, run.stderr
    report = json.loads((tmp_path / "c.json").read_text())
    row = report["classifier"]
    assert (row["model"], row["epochs"], row["repeats"], row["validate_every_n_epochs"]) == (
        "examples.digits.DigitsCNN", 1, 1, 1)  # fmt: skip
    assert row["epochs_run"] == {"bare": 1, "linear_pl": 1}
    seconds = row["fit_seconds"]
    assert set(seconds) == {"bare", "linear_pl"} and all(v > 0 for v in seconds.values())
    assert row["bare_over_linear_pl"] == pytest.approx(seconds["bare"] / seconds["linear_pl"])
    assert len(row["round_ratios"]) == 1 and row["median_round_ratio"] == row["round_ratios"][0]
    assert set(row["val_acc"]) == {"bare", "linear_pl"} and all(0 <= v <= 1 for v in row["val_acc"].values())
    assert set(report) == {"machine", "threads", "threads_from", "classifier"}
    # Without --one_thread, the threads a user's command gets: torch's default, or OMP_NUM_THREADS if set.
    # (The suite's conftest.py sets the variable, which a new process's torch follows.)
    expected = os.environ["OMP_NUM_THREADS"]
    assert report["threads_from"] == f"OMP_NUM_THREADS={expected}" and report["threads"] == int(expected)
    # One table row, and nothing else on stdout: linear_pl's progress lines are kept out of it.
    assert "DigitsCNN" in run.stdout and "bare/pl" in run.stdout and "Epoch [" not in run.stdout
    assert f"{row['bare_over_linear_pl']:.2f}" in run.stdout


def test_answer_runs_the_default_run_both_ways_and_tutorial1(benchmark, tmp_path, in_process):
    run = benchmark("--section", "answer", "--seeds", "1", "--train_flags", "--max_epochs 3",
                    "--repeats", "1", "--json", "a.json")  # fmt: skip
    assert run.status == 0, run.stderr
    answer = json.loads((tmp_path / "a.json").read_text())["answer"]
    assert [r["epochs"] for r in answer["runs"]["auto"]] == [3] and [r["epochs"] for r in answer["runs"]["none"]] == [3]
    assert answer["tutorial1_wall_seconds"] > 0 and "tutorial1" in run.stdout


def test_scale_times_whole_commands_and_imports_in_new_processes(benchmark, tmp_path):
    run = benchmark("--section", "scale", "--size", "100,4,10,2", "--repeats", "1", "--json", "s.json")
    assert run.status == 0, run.stderr
    (row,) = json.loads((tmp_path / "s.json").read_text())["scale"]
    assert row["linear_pl_seconds"] > 0 and row["plain_script_seconds"] > 0 and row["repeats"] == 1
    assert "best of 1: scripts/train.py" in run.stdout
    assert row["linear_pl_peak_rss_bytes"] > row["data_bytes"]
    assert set(row["import_seconds"]) == {"torch", "lightning"} and "lightning" in run.stdout
    assert 0 < row["import_seconds"]["torch"] < row["import_seconds"]["lightning"]  # Lightning imports torch


def test_files_times_a_generated_csv_and_parquet_against_a_small_one(benchmark, tmp_path, in_process):
    run = benchmark("--section", "files", "--file_rows", "3000", "--json", "f.json")
    assert run.status == 0, run.stderr
    rows = json.loads((tmp_path / "f.json").read_text())["files"]
    assert [r["kind"] for r in rows] == ["csv", "parquet"] and all(r["rows"] == 3000 for r in rows)
    for r in rows:
        assert r["load_seconds"] == pytest.approx(r["command_seconds"] - r["small_command_seconds"])
        assert r["polars_read_seconds"] > 0 and r["peak_rss_bytes"] > r["data_bytes"] == 3000 * 21 * 4
    assert "load/polars" in run.stdout


def test_sweep_runs_a_grid_and_tpe_with_and_without_pruning(benchmark, tmp_path, in_process):
    run = benchmark("--section", "sweep", "--sweep_trials", "2", "--sweep_epochs", "2", "--json", "w.json")
    assert run.status == 0, run.stderr
    report = json.loads((tmp_path / "w.json").read_text())
    assert set(report) == {"machine", "threads", "threads_from", "sweep"}
    r = report["sweep"]
    assert (r["preset"], r["epochs"], r["trials"], len(r["lrs"]), len(r["hidden_sizes"])) == ("mlp-sine", 2, 2, 10, 3)
    assert r["lrs"][0] == 1e-4 and r["lrs"][-1] == 3e-3 and r["lrs"] == sorted(r["lrs"])
    sweeps = {row["name"]: row for row in r["sweeps"]}
    assert [(row["name"], row["sampler"], row["pruner"]) for row in r["sweeps"]] == [
        ("grid", "grid", "none"), ("tpe-median", "tpe", "median"), ("tpe-none", "tpe", "none")]  # fmt: skip
    for row in r["sweeps"]:
        assert row["trials"] == sum(row["states"].values()) == 2 and 1 <= row["points"] <= 2
        assert 0 < row["trial_epochs"] <= 2 * 2 and row["wall_seconds"] > 0
        assert row["best_value"] > 0 and r["lrs"][0] <= row["best_params"]["model.lr"] <= r["lrs"][-1]
        assert json.loads(row["best_params"]["model.hidden_sizes"]) in r["hidden_sizes"]
    assert sweeps["grid"]["best_params"]["model.lr"] in r["lrs"]  # a point of the grid
    assert r["tpe_over_grid"] == pytest.approx(sweeps["tpe-median"]["best_value"] / sweeps["grid"]["best_value"])
    assert r["unpruned_tpe_over_grid"] == pytest.approx(sweeps["tpe-none"]["best_value"] / sweeps["grid"]["best_value"])
    epochs = sweeps["tpe-median"]["trial_epochs"], sweeps["tpe-none"]["trial_epochs"]
    assert r["pruning_saves"] == pytest.approx(1 - epochs[0] / epochs[1])
    assert f"pruning saves 1 - {epochs[0]}/{epochs[1]} = {r['pruning_saves']:.2f}" in run.stdout
    assert f"grid best {r['tpe_over_grid']:.2f}" in run.stdout and "Traceback" not in run.stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--repeats", "0"], "--repeats 0: must be >= 1"),
        (["--seeds", "0"], "--seeds 0: must be >= 1"),
        (["--epochs", "0"], "--epochs 0: must be >= 1"),
        (["--file_rows", "10"], "--file_rows 10: must be > 1000"),
        (["--sweep_trials", "0"], "--sweep_trials 0: must be >= 1"),
        (["--sweep_epochs", "0"], "--sweep_epochs 0: must be >= 1"),
        (["--every_n_steps", "0"], "--every_n_steps 0: must be >= 1"),
        (["--serve_seconds", "0"], "--serve_seconds 0.0: must be > 0"),
        (["--repeats", "x"], "argument --repeats: invalid int value: 'x'"),
        (["--sections", "floor"], "unrecognized arguments: --sections floor"),
    ],
)
def test_bad_counts_are_one_line_and_exit_2(benchmark, flags, message):
    run = benchmark(*flags)
    assert (run.status, run.stderr) == (2, f"error: {message}\n")


@pytest.mark.parametrize("size", ["1,2,3", "10,0,1,1", "2,5,1,1", "a,b,c,d"])
def test_bad_size_is_one_line_and_exit_2(benchmark, size):
    run = benchmark("--size", size)
    assert run.status == 2
    assert run.stderr.startswith(f"error: --size {size}:") and run.stderr.count("\n") == 1


def test_larger_trains_a_model_three_ways_and_says_what_checkpoints_cost(benchmark, tmp_path, in_process):
    run = benchmark("--section", "larger", "--larger_size", "64,1,4,8", "--every_n_steps", "4",
                 "--repeats", "1", "--accelerator", "cpu", "--json", "l.json")  # fmt: skip
    assert run.status == 0, run.stderr
    r = json.loads((tmp_path / "l.json").read_text())["larger"]
    assert (r["width"], r["layers"], r["batch"], r["steps"], r["every_n_steps"]) == (64, 1, 4, 8, 4)
    assert r["parameters"] == 64 * 64 + 64 + 64 + 1
    ways = r["ways"]
    assert set(ways) == {"bare", "modelckpt", "linear_pl"}
    assert ways["bare"]["writes"] == 0 and ways["bare"]["checkpoint_bytes"] == 0
    assert ways["bare"]["kill_loss"][0] == pytest.approx(ways["bare"]["fit_seconds"])  # a kill loses everything
    assert ways["modelckpt"]["writes"] >= 2 and ways["modelckpt"]["checkpoint_bytes"] > 0  # at steps 4 and 8
    assert ways["linear_pl"]["writes"] >= 1 and ways["linear_pl"]["checkpoint_bytes"] > 0
    assert ways["linear_pl"]["stopped_because"] == "max_steps"
    for way, measured in ways.items():
        assert r["bare_over"][way] == pytest.approx(ways["bare"]["fit_seconds"] / measured["fit_seconds"])
        assert measured["peak_rss_bytes"] > 0
    assert "larger model: MLP 64 wide, 1 hidden layers" in run.stdout and "kill loses" in run.stdout


@pytest.mark.parametrize("size", ["4096,3,16", "0,3,16,64", "a,b,c,d"])
def test_bad_larger_size_is_one_line_and_exit_2(benchmark, size):
    run = benchmark("--section", "larger", "--larger_size", size)
    assert run.status == 2 and run.stderr.count("\n") == 1 and run.stderr.startswith(f"error: --larger_size {size}: ")


def test_write_replaces_the_sections_block_on_the_page_and_nothing_else(benchmark, tmp_path):
    page = tmp_path / "page.md"
    (start, end), (other_start, other_end) = markers("floor"), markers("answer")
    page.write_text(f"# Intro\n\n{start}\nold figures\n{end}\nbetween\n{other_start}\nkept\n{other_end}\n")
    flags = ["--section", "floor", "--size", "40,3,4,3", "--repeats", "1", "--accelerator", "cpu"]
    run = benchmark(*flags, "--write", str(page), "--json", "w.json")
    assert run.status == 0, run.stderr
    text = page.read_text()
    block = text.split(f"{start}\n")[1].split(end)[0]
    assert text.replace(block, "") == f"# Intro\n\n{start}\n{end}\nbetween\n{other_start}\nkept\n{other_end}\n"
    lines, printed = block.splitlines(), run.stdout.splitlines()
    assert (lines[0], lines[-1]) == ("```text", "```")
    assert lines[1] == "$ python -m benchmarks " + " ".join(flags)  # how to measure it again, not where it went
    assert lines[2] == printed[0] == f"machine: {json.loads((tmp_path / 'w.json').read_text())['machine']}"
    assert lines[3:-1] == printed[1:] and "pl/bare" in lines[5]  # threads, then the section's table as printed
    benchmark(*flags, "--write", str(page))
    assert page.read_text().count(start) == 1 and page.read_text().count("```text") == 1  # replaced, not added


def test_write_to_a_page_without_the_sections_block_is_one_line_and_exit_2(benchmark, tmp_path):
    (tmp_path / "page.md").write_text("# no blocks\n")
    run = benchmark("--section", "floor", "--write", "page.md")
    start, end = markers("floor")
    expected = f"error: --write page.md: expected one {start} ... {end} block for section floor\n"
    assert (run.status, run.stderr) == (2, expected)
    run = benchmark("--write", "missing.md")
    assert (run.status, run.stderr) == (2, "error: --write missing.md: cannot read it (No such file or directory)\n")


def test_the_benchmark_page_has_a_block_for_every_section():
    args = parse_flags(["--write", str(ROOT / "docs" / "benchmarks.md")])  # a UsageError if one is missing
    assert args.sections == SECTIONS and len(SECTIONS) == 8
