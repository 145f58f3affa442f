"""Data loading pinned where the mutation run found it loose: the memory refusals of tables
(DataFrame/Table, Feather for predict) and of large CSVs read by pyarrow, each one exact line;
which reader a CSV goes to at exactly the pyarrow threshold; a table's bad column and missing
target named with the table as source; a Parquet file held in memory at exactly the budget; NaN
found past the first blocks of rows; and columns whose variance overflows, at either sign."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from test_gaps_data import refused, write

from dlport.common import arrow, stream
from dlport.common import data as data_module
from dlport.common.data import Dataset, load_dataset, load_features

pa = pytest.importorskip("pyarrow")

BIG = 100_000  # rows: 3 columns of them are 2.4 MB as float64


@pytest.fixture()
def memory(monkeypatch):
    """Available memory, as the test sets it."""
    available = {"bytes": None}
    monkeypatch.setattr(data_module, "available_memory", lambda: available["bytes"])
    return available


def _table(rows=BIG):
    return pa.table(
        {"a": np.arange(rows, dtype=np.float64), "b": np.ones(rows), "c": np.ones(rows)}
    )


def test_a_table_larger_than_memory_is_refused_exactly(memory):
    memory["bytes"] = 1000
    assert refused(load_dataset, _table()) == (
        "Table needs 2.4 MB of memory (its values as float64) but 0.0 MB is available; "
        "use a smaller file"
    )
    memory["bytes"] = None
    assert load_dataset(_table()).X.shape == (BIG, 2)


def test_predict_refuses_a_feather_file_larger_than_memory_exactly(tmp_path, memory):
    import pyarrow.feather as feather

    path = str(tmp_path / "big.feather")
    feather.write_feather(_table(), path)
    memory["bytes"] = 1000
    assert refused(load_features, path, ["a"], "c") == (
        f"{path} needs 2.4 MB of memory (its values as float64) but 0.0 MB is available; "
        "use a smaller file"
    )
    memory["bytes"] = None
    X, y = load_features(path, ["a"], "c")
    assert X[:3, 0].tolist() == [0.0, 1.0, 2.0] and y.shape == (BIG,)


def test_a_tables_bad_column_and_missing_target_name_the_table():
    text = pa.table({"a": ["x", "y"], "b": [1.0, 2.0]})
    assert refused(load_dataset, text) == (
        "Table, column 'a': type string is not a number; dlport needs numeric columns"
    )
    assert refused(load_dataset, _table(3), "z") == (
        "target column 'z' not in Table; columns are: a, b, c"
    )
    data = load_dataset(_table(3), "a")
    assert (data.feature_names, data.target_name, data.y.tolist()) == (("b", "c"), "a", [0, 1, 2])


def _recording_csv_table(monkeypatch):
    calls = []
    csv_table = arrow.csv_table
    monkeypatch.setattr(
        arrow, "csv_table", lambda source: calls.append(source) or csv_table(source)
    )
    return calls


def test_a_csv_file_at_exactly_the_threshold_is_read_by_pyarrow_from_its_path(
    tmp_path, monkeypatch
):
    calls = _recording_csv_table(monkeypatch)
    path = write(tmp_path, "d.csv", "a,b\n1,2\n3,4\n")
    monkeypatch.setattr(data_module, "ARROW_CSV_FROM", os.path.getsize(path))
    assert load_dataset(path).X.tolist() == [[1.0], [3.0]]
    assert calls == [path]  # the file itself, not a copy of its bytes


def test_a_large_csv_past_memory_is_refused_before_pyarrow_reads_it(tmp_path, monkeypatch, memory):
    calls = _recording_csv_table(monkeypatch)
    path = write(tmp_path, "d.csv", "a,b\n" + "1,2\n" * 20_000)
    size = os.path.getsize(path)
    monkeypatch.setattr(data_module, "ARROW_CSV_FROM", 0)
    memory["bytes"] = 100
    assert refused(load_dataset, path, max_memory="1GB") == (
        f"{path} needs {2 * size / 1e6:.1f} MB of memory (at least 2x its size) but 0.0 MB is "
        "available; lower --max-memory so that it streams"
    )
    assert calls == []


def test_predict_reads_csv_bytes_of_exactly_the_threshold_with_pyarrow(tmp_path, monkeypatch):
    calls = _recording_csv_table(monkeypatch)
    path = write(tmp_path, "d.csv", "a,b\n1,2\n3,4\n")
    monkeypatch.setattr(data_module, "ARROW_CSV_FROM", os.path.getsize(path))
    X, y = load_features(path, ["a"], "b")
    assert (X.tolist(), y.tolist(), len(calls)) == ([[1.0], [3.0]], [2.0, 4.0], 1)
    assert calls[0] != path  # its bytes, already read


def test_predict_names_the_file_of_a_duplicate_column_read_by_pyarrow(tmp_path, monkeypatch):
    calls = _recording_csv_table(monkeypatch)
    path = write(tmp_path, "twice.csv", "a,a\n1,2\n3,4\n")
    monkeypatch.setattr(data_module, "ARROW_CSV_FROM", 0)
    assert refused(load_features, path, ["a"], "b") == (
        f"{path}: duplicate column name(s) 'a'; give every column its own name"
    )
    assert len(calls) == 1


def test_a_parquet_file_of_exactly_the_budget_is_held_in_memory(tmp_path):
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(_table(10), path, row_group_size=1)
    budget = stream.in_memory_bytes(10, 3)
    held = load_dataset(path, max_memory=budget)
    assert type(held) is Dataset and held.X.shape == (10, 2)
    assert type(load_dataset(path, max_memory=budget - 1)).__name__ == "StreamedDataset"


def test_nan_past_the_first_two_blocks_of_rows_is_found_and_placed():
    n = 2 * data_module._ROWS_CHECKED + 5000
    X = np.ones((n, 1))
    X[n - 1, 0] = np.nan
    assert refused(Dataset.from_arrays, X, np.ones(n)) == (
        f"arrays: features contain NaN or inf (first at data row {n}); drop or impute those rows"
    )


OVERFLOWS = (
    "arrays: column 'x0' overflows float64 arithmetic (its mean or variance is infinite); "
    "rescale the data, e.g. divide the column by a power of 10"
)


def test_a_column_overflowing_through_its_negative_values_is_refused():
    assert refused(Dataset.from_arrays, [[-1e300], [0.0]], [1.0, 2.0]) == OVERFLOWS
    assert refused(Dataset.from_arrays, [[0.0], [1e300]], [1.0, 2.0]) == OVERFLOWS


def test_a_column_just_past_the_quick_bound_whose_variance_overflows_is_refused():
    # 0.5 x sqrt(max / n) is the quick bound; +-1.2 x sqrt(max / 2) over 2 rows: squares summing
    # to 1.44 x max.
    v = 1.2 * math.sqrt(float(np.finfo(np.float64).max) / 2)
    assert refused(Dataset.from_arrays, [[v], [-v]], [1.0, 2.0]) == OVERFLOWS
    assert Dataset.from_arrays([[v / 4], [-v / 4]], [1.0, 2.0]).X[0, 0] == v / 4


def test_data_of_exactly_the_budget_is_held_in_memory():
    budget = stream.in_memory_bytes(10, 3)  # 10 rows of 2 features and the target
    held = load_dataset(_table(10), max_memory=budget)
    assert type(held) is Dataset and held.X.shape == (10, 2)
    assert type(load_dataset(_table(10), max_memory=budget - 1)).__name__ == "StreamedDataset"


def test_the_memory_budget_is_half_the_available_memory_or_unbounded(memory):
    memory["bytes"] = 1001
    assert data_module.memory_budget() == 500
    memory["bytes"] = None  # the system does not say
    assert data_module.memory_budget() == 1 << 62
    assert data_module.memory_budget(2**53 + 1) == 2**53 + 1  # bytes, taken exactly
    assert data_module.memory_budget("2KB") == 2000


def test_a_feather_file_is_its_own_source_and_takes_a_target(tmp_path):
    import pyarrow.feather as feather

    path = str(tmp_path / "d.feather")
    feather.write_feather(_table(3), path)
    data = load_dataset(path, "a")
    assert (data.source, data.target_name, data.feature_names) == (path, "a", ("b", "c"))
    assert data.y.tolist() == [0.0, 1.0, 2.0]


def test_a_csv_read_by_pyarrow_is_its_own_source_and_takes_a_target(tmp_path, monkeypatch):
    path = write(tmp_path, "d.csv", "a,b,c\n1,2,3\n4,5,6\n")
    monkeypatch.setattr(data_module, "ARROW_CSV_FROM", 0)
    data = load_dataset(path, "a")
    assert (data.source, data.target_name, data.feature_names) == (path, "a", ("b", "c"))
    assert (data.X.tolist(), data.y.tolist()) == ([[2.0, 3.0], [5.0, 6.0]], [1.0, 4.0])


def test_a_bad_cell_in_the_bundled_data_names_the_bundled_set(monkeypatch):
    monkeypatch.setattr(data_module, "_bundled", lambda name: b"a,b\n1,x\n")
    assert refused(load_dataset, "diabetes") == (
        "diabetes line 2, column 'b': 'x' is not a number; dlport needs numeric columns"
    )
