"""The CSV route: a file you made, trained through the command; every kind of bad file is one line, exit 2."""

import polars as pl
import pytest
import torch
from runner.commands import ROOT

from linear_pl.regression.csv_data import CSVDataModule


def write(tmp_path, text: str, name: str = "data.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_reads_the_columns_it_is_told_and_splits_by_seed(tmp_path):
    rows = "\n".join(f"{i},{2 * i},{i % 3},{5 * i + 1}" for i in range(20))
    path = write(tmp_path, "a,b,c,y\n" + rows + "\n")
    data = CSVDataModule(path, "y", feature_columns=["c", "a"], val_fraction=0.25, seed=1)
    data.setup()
    assert data.num_features == 2 and data.feature_names == ["c", "a"]
    assert (len(data.train_x), len(data.val_x)) == (15, 5)
    x = torch.cat([data.train_x, data.val_x])
    y = torch.cat([data.train_y, data.val_y])
    assert sorted(x[:, 1].tolist()) == [float(i) for i in range(20)]  # every row once
    assert torch.equal(y, 5 * x[:, 1] + 1) and torch.equal(x[:, 0], x[:, 1] % 3)  # rows kept whole
    again = CSVDataModule(path, "y", feature_columns=["c", "a"], val_fraction=0.25, seed=1)
    again.setup()
    other = CSVDataModule(path, "y", feature_columns=["c", "a"], val_fraction=0.25, seed=2)
    other.setup()
    assert torch.equal(again.val_x, data.val_x) and not torch.equal(other.val_x, data.val_x)


def test_a_test_fraction_is_split_off_disjoint_from_validation_and_tested_after_fit(train, tmp_path):
    rows = "\n".join(f"{i},{i % 7},{3 * i - (i % 7) + 2}" for i in range(40))
    path = write(tmp_path, "a,b,y\n" + rows + "\n")
    plain, split = (
        CSVDataModule(path, "y", val_fraction=0.25),
        CSVDataModule(path, "y", val_fraction=0.25, test_fraction=0.2),
    )
    plain.setup()
    split.setup()
    assert (len(split.train_x), len(split.test_x), len(split.val_x)) == (22, 8, 10)
    assert torch.equal(split.val_x, plain.val_x)  # the validation set is the one it was without a test set
    ids = [set(t[:, 0].tolist()) for t in (split.train_x, split.test_x, split.val_x)]
    assert set.union(*ids) == set(map(float, range(40))) and sum(map(len, ids)) == 40  # disjoint, all rows
    run = train("--data", "csv", "--data.path", path, "--data.target_column", "y", "--data.test_fraction", "0.2",
                "--bias", "--data.val_fraction", "0.25")  # fmt: skip
    assert run.status == 0, run.stderr
    assert set(run.results["test"]) == {"test/loss"} and run.results["test"]["test/loss"] < 1e-3
    assert "Test (best.ckpt): test_loss " in run.stdout
    assert "test" not in train("--data", "csv", "--data.path", path, "--data.target_column", "y").results


def test_a_csv_you_made_trains_to_the_least_squares_answer(train, tmp_path):
    # y = 3 a - 2 b + 7 exactly, on features far from zero (a is a year): conditioning's job.
    g = torch.Generator().manual_seed(0)
    a, b = 2000 + torch.randint(0, 25, (200,), generator=g), torch.randint(0, 10, (200,), generator=g)
    rows = "\n".join(f"{x1},{x2},{3 * x1 - 2 * x2 + 7}" for x1, x2 in zip(a.tolist(), b.tolist()))
    path = write(tmp_path, "year,count,price\n" + rows + "\n")
    run = train("--data", "csv", "--data.path", path, "--data.target_column", "price", "--bias")
    assert run.status == 0, run.stderr
    results = run.results
    assert results["learned_weights"] == pytest.approx([3.0, -2.0], abs=1e-3)
    assert results["learned_bias"] == pytest.approx(7.0, abs=0.5)  # a year-sized intercept: float32 limits it
    assert results["true_weights"] is None and "year" in run.stdout and "count" in run.stdout


def test_the_shipped_diabetes_csv_is_the_real_data():
    data = CSVDataModule(str(ROOT / "examples" / "diabetes.csv"), "target")
    assert data.num_features == 10 and data.feature_names[:3] == ["age", "sex", "bmi"]
    data.setup()
    assert len(data.train_x) + len(data.val_x) == 442


@pytest.mark.parametrize(
    ("text", "flags", "expected"),
    [
        (None, [], "cannot read it (No such file or directory)"),
        ("", [], "empty; expected a header line of column names"),
        ("a,y\n", [], "a header but no data rows"),
        ("a,y\n1,2\n", ["--data.target_column", "z"], "no column 'z'; the columns are a, y"),
        ("a,y\n1,2\n", ["--data.feature_columns", "[b]"], "no column 'b'"),
        ("a,a,y\n1,2,3\n", [], "column 'a' appears more than once"),
        ("a,y\n1,2\n3\n", [], "data.csv line 3: 1 cells, but the header has 2"),
        ("a,y\n1,2\n3,abc\n", [], "data.csv line 3, column 'y': 'abc' is not a number"),
        ("a,y\n1,2\n,4\n", [], "data.csv line 3, column 'a': empty cell"),
        ("a,y\n1,2\nnan,4\n", [], "data.csv line 3, column 'a': 'nan' is not a finite number"),
        ("a,y\n1,2\n3,inf\n", [], "data.csv line 3, column 'y': 'inf' is not a finite number"),
        ("a,b,y\n1,2,3\n", [], "1 training rows for 2 features: too few"),
    ],
)
def test_a_bad_file_is_one_line_naming_where_and_exit_2(train, tmp_path, text, flags, expected):
    path = str(tmp_path / "data.csv") if text is None else write(tmp_path, text)
    run = train("--data", "csv", "--data.path", path, "--data.target_column", "y", *flags)
    assert run.status == 2, run.stderr
    assert run.stderr.startswith("error: ") and run.stderr.count("\n") == 1, run.stderr
    assert expected in run.stderr and "data.csv" in run.stderr and "compute_fn" not in run.stderr
    assert "Traceback" not in run.stderr and run.stdout == ""
    assert not (run.root / "lightning_logs").exists()


def test_bad_arguments_name_the_argument(train, tmp_path):
    path = write(tmp_path, "a,y\n1,2\n")
    run = train("--data", "csv", "--data.path", path, "--data.target_column", "y", "--data.val_fraction", "1")
    assert run.status == 2 and "val_fraction 1" in run.stderr and "must be in [0, 1)" in run.stderr


@pytest.mark.parametrize("suffix", [".parquet", ".feather"])
def test_parquet_and_feather_read_as_the_csv_does_and_train_the_same(train, tmp_path, suffix):
    csv_path = str(ROOT / "examples" / "diabetes.csv")
    table = pl.read_csv(csv_path)
    path = tmp_path / f"diabetes{suffix}"
    table.write_parquet(path) if suffix == ".parquet" else table.write_ipc(path)
    from_csv, from_file = (CSVDataModule(p, "target", test_fraction=0.1) for p in (csv_path, str(path)))
    for data in (from_csv, from_file):
        data.setup()
    assert from_file.feature_names == from_csv.feature_names
    for split in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y"):
        assert torch.equal(getattr(from_file, split), getattr(from_csv, split)), split
    flags = ["--data.target_column", "target", "--bias", "--max_epochs", "20"]
    by_csv = train("--data", "csv", "--data.path", csv_path, *flags)
    by_file = train("--data", "csv", "--data.path", str(path), *flags)
    assert by_file.status == 0, by_file.stderr
    assert by_file.results["learned_weights"] == by_csv.results["learned_weights"]


@pytest.mark.parametrize(
    ("frame", "flags", "expected"),
    [
        (None, [], "data.parquet: cannot read it (No such file or directory)"),
        ("not parquet", [], "data.parquet: not a parquet file"),
        ({"a": [1.0, 2.0], "y": [1.0, 2.0]}, ["--data.target_column", "z"], "no column 'z'; the columns are a, y"),
        ({"a": ["x", "z"], "y": [1.0, 2.0]}, [], "column 'a' is String, not numbers"),
        ({"a": [1.0, None, 3.0], "y": [1.0, 2.0, 3.0]}, [], "column 'a' has 1 empty (null) cells, first at row 1"),
        ({"a": [1.0, 2.0, 3.0], "y": [1.0, float("inf"), 3.0]}, [], "column 'y', row 1: inf is not a finite number"),
        ({"a": [1.0, 2.0, float("nan")], "y": [1.0, 2.0, 3.0]}, [], "column 'a', row 2: nan is not a finite number"),
        ({"a": [], "y": []}, [], "data.parquet: no data rows"),
        ({"a": [1.0], "b": [2.0], "y": [3.0]}, [], "1 training rows for 2 features: too few"),
    ],
)
def test_a_bad_parquet_file_is_one_line_naming_the_column_and_row(train, tmp_path, frame, flags, expected):
    path = tmp_path / "data.parquet"
    if isinstance(frame, str):
        path.write_text(frame)
    elif frame is not None:
        pl.DataFrame(
            frame, schema={k: (pl.String if "x" in v else pl.Float64) for k, v in frame.items()}
        ).write_parquet(path)
    run = train("--data", "csv", "--data.path", str(path), "--data.target_column", "y", *flags)
    assert run.status == 2, run.stderr
    assert run.stderr.startswith("error: ") and run.stderr.count("\n") == 1 and expected in run.stderr, run.stderr
    assert not (run.root / "lightning_logs").exists()
