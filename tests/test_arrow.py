"""Parquet, Feather/Arrow, pyarrow Tables and pandas DataFrames: the same data as the CSV."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_cli import assert_one_line_error, checkpoint, dlport  # noqa: F401  (a fixture)

from dlport.common.data import load_dataset
from dlport.common.errors import DlportError


@pytest.fixture
def diabetes_table(diabetes):
    columns = dict(zip(diabetes.feature_names, diabetes.X.T, strict=True))
    return pa.table(columns | {diabetes.target_name: diabetes.y})


def same_data(a, b):
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    assert (a.feature_names, a.target_name) == (b.feature_names, b.target_name)


def test_parquet_feather_and_a_table_give_the_csvs_data(tmp_path, diabetes, diabetes_table):
    pq.write_table(diabetes_table, tmp_path / "d.parquet")
    feather.write_feather(diabetes_table, tmp_path / "d.feather")
    for spec in (tmp_path / "d.parquet", str(tmp_path / "d.feather"), diabetes_table):
        data = load_dataset(spec)
        same_data(data, diabetes)
    assert load_dataset(diabetes_table).source == "Table"


def test_a_folder_of_parquet_parts_is_one_dataset(tmp_path, diabetes, diabetes_table):
    folder = tmp_path / "parts"
    folder.mkdir()
    pq.write_table(diabetes_table.slice(0, 200), folder / "part-0.parquet")
    pq.write_table(diabetes_table.slice(200), folder / "part-1.parquet")
    same_data(load_dataset(str(folder)), diabetes)


def test_a_dataframe_and_its_named_target(diabetes, diabetes_table):
    pandas = pytest.importorskip("pandas")  # installed in the core env
    frame = pandas.DataFrame(diabetes_table.to_pydict(), index=np.arange(442) + 1000)
    data = load_dataset(frame, target="bmi")
    assert data.target_name == "bmi" and "bmi" not in data.feature_names
    np.testing.assert_array_equal(data.y, diabetes.X[:, 2])
    assert data.X.shape == (442, 10)  # the index is not a column


def test_training_on_parquet_equals_training_on_the_csv(tmp_path, diabetes_table, trainer):
    path = tmp_path / "d.parquet"
    pq.write_table(diabetes_table, path, row_group_size=100)  # read a row group at a time
    framework = ["--framework", trainer.name, "--optimizer", "adam"]
    runs = [
        dlport("train", *framework, "--data", spec, "--epochs", "3", "--json", "-")
        for spec in ("diabetes", str(path))
    ]
    assert all(run.returncode == 0 for run in runs), runs[1].stderr
    import json

    a, b = (json.loads(run.stdout) for run in runs)
    assert a["weights"] == b["weights"] and a["bias"] == b["bias"]


def test_predict_reads_parquet_columns_by_name(tmp_path, checkpoint, diabetes_table):  # noqa: F811
    path = tmp_path / "features.parquet"
    pq.write_table(diabetes_table.select(list(reversed(diabetes_table.column_names[:10]))), path)
    by_name = dlport("predict", "--checkpoint", str(checkpoint), "--data", str(path))
    full = dlport("predict", "--checkpoint", str(checkpoint), "--data", "diabetes")
    assert by_name.returncode == 0, by_name.stderr
    assert by_name.stdout == full.stdout


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (pa.table({"a": [1.0, 2.0], "y": ["x", "z"]}), "column 'y': type string is not a number"),
        (pa.table({"a": [1.0, None, 3.0], "y": [1, 2, 3]}), "column 'a': data row 2 is empty"),
        (pa.table({"a": pa.array([], pa.float64()), "y": pa.array([], pa.int64())}), "no rows"),
        (pa.table([[1.0], [2.0]], names=["y", "y"]), "duplicate column name(s) 'y'"),
        (pa.table({"a": [1.0, float("nan")], "y": [1, 2]}), "features contain NaN or inf"),
    ],
    ids=["text", "null", "empty", "duplicate", "nan"],
)
def test_bad_columns_are_refused_in_one_line(tmp_path, table, message):
    with pytest.raises(DlportError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_dataset(table)
    path = tmp_path / "bad.parquet"
    pq.write_table(table, path)
    assert_one_line_error(dlport("train", "--data", str(path)), 2, message)


def test_a_file_that_is_not_parquet_and_an_unknown_object(tmp_path):
    path = tmp_path / "fake.parquet"
    path.write_text("a,y\n1,2\n")
    assert_one_line_error(dlport("train", "--data", str(path)), 2, f"cannot read {path} as Parquet")
    with pytest.raises(DlportError, match="cannot load a list; give a path, a pandas DataFrame"):
        load_dataset([[1.0, 2.0]])


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
cells = st.one_of(
    finite.map(repr),
    st.integers(-(10**18), 10**18).map(str),
    finite.map(lambda v: f"{v:.6e}"),
    finite.map(lambda v: f'"{v!r}"'),  # quoted numbers are numbers to both
)


@settings(max_examples=200, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 20), st.integers(2, 5)),
    data=st.data(),
    newline=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
    blank_lines=st.booleans(),
)
def test_pyarrows_csv_reading_equals_dlports_parser(shape, data, newline, bom, blank_lines):
    from dlport.common import arrow
    from dlport.common.data import _parse_csv

    rows, columns = shape
    lines = [",".join(f" c{j} " for j in range(columns))]
    lines += [
        ",".join(data.draw(st.lists(cells, min_size=columns, max_size=columns)))
        for _ in range(rows)
    ]
    if blank_lines:
        lines.insert(2, "")
    raw = (b"\xef\xbb\xbf" if bom else b"") + (newline.join(lines) + newline).encode()
    fast = arrow.csv_values(raw)
    names, values = _parse_csv(raw, "t.csv")
    if fast is not None:  # None: pyarrow saw something not plainly numeric; ours reads it
        assert fast[0] == names
        np.testing.assert_array_equal(fast[1], values)


def test_text_true_false_and_empty_cells_leave_pyarrow_for_the_exact_parser():
    from dlport.common import arrow

    assert arrow.csv_values(b"a,b\n1,2\n3,4\n")[1].tolist() == [[1.0, 2.0], [3.0, 4.0]]
    for raw in (b"a,b\n1,x\n", b"a,b\ntrue,1\n", b"a,b\n1,\n", b"a,b\n", b"a,b\n1,2,3\n"):
        assert arrow.csv_values(raw) is None


def test_a_gzipped_csv_is_the_csv_and_a_broken_one_is_refused(tmp_path, diabetes):
    import gzip
    from importlib import resources

    from dlport.datasets import __name__ as package  # the bundled CSV's bytes

    raw = resources.files(package).joinpath("diabetes.csv").read_bytes()
    (tmp_path / "d.csv.gz").write_bytes(gzip.compress(raw))
    same_data(load_dataset(str(tmp_path / "d.csv.gz")), diabetes)
    (tmp_path / "bad.csv.gz").write_bytes(gzip.compress(raw)[:-30])
    run = dlport("train", "--data", str(tmp_path / "bad.csv.gz"))
    assert_one_line_error(run, 2, "cannot decompress")


def test_small_csvs_skip_pyarrow_and_large_ones_read_the_same_through_it(monkeypatch, diabetes):
    import subprocess
    import sys

    from dlport.common import data as data_module

    code = "import sys; from dlport.common.data import load_dataset; load_dataset('diabetes'); "
    code += "print('pyarrow' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"  # 442 rows: Python's parser, no pyarrow import
    monkeypatch.setattr(data_module, "ARROW_CSV_FROM", 0)
    calls = []
    csv_values = data_module.arrow.csv_values
    monkeypatch.setattr(
        data_module.arrow, "csv_values", lambda raw: calls.append(1) or csv_values(raw)
    )
    same_data(load_dataset("diabetes"), diabetes)
    assert calls == [1]
