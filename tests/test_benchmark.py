"""The benchmark script runs and reports what it measured (its speed goals are not tested: noisy)."""

import json

import pytest


def test_benchmark_reports_three_ways_on_a_custom_workload(script, tmp_path):
    run = script("benchmark", "--size", "40,3,4,3", "--repeats", "1", "--accelerator", "cpu", "--json", "b.json")
    assert run.status == 0, run.stderr
    report = json.loads((tmp_path / "b.json").read_text())
    (row,) = report["workloads"]
    assert (row["num_samples"], row["num_features"], row["batch_size"], row["epochs"]) == (40, 3, 4, 3)
    speeds = row["samples_per_second"]
    assert set(speeds) == {"plain", "bare", "linear_pl"} and all(v > 0 for v in speeds.values())
    assert row["linear_pl_over_bare"] == pytest.approx(speeds["linear_pl"] / speeds["bare"])
    assert row["data_bytes"] == (40 * 3 + 40 + 10 * 3 + 10) * 4  # float32 train and validation sets
    assert all(row["data_bytes"] < rss for rss in row["peak_rss_bytes"].values())
    assert report["copy_bandwidth"] > 0 and report["wall_time"] is None  # only with every workload
    assert "custom" in run.stdout and "pl/bare" in run.stdout


def test_repeats_below_one_is_one_line_and_exit_2(script):
    run = script("benchmark", "--size", "20,2,2,1", "--repeats", "0")
    assert (run.status, run.stderr) == (2, "error: --repeats 0: must be >= 1\n")


@pytest.mark.parametrize("size", ["1,2,3", "10,0,1,1", "2,5,1,1", "a,b,c,d"])
def test_bad_size_is_one_line_and_exit_2(script, size):
    run = script("benchmark", "--size", size)
    assert run.status == 2
    assert run.stderr.startswith(f"error: --size {size}:") and run.stderr.count("\n") == 1
