"""Gaps the mutation run found in dlport.common.data (tox -e mutation): cells, specs, NPZ shapes
and the data predict reads."""

from __future__ import annotations

import io
import os
import warnings
import zipfile

import numpy as np
import pytest

from dlport.common import data as data_module
from dlport.common.data import load_dataset, load_features, parse_synthetic
from dlport.common.errors import DlportError


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def npz(tmp_path, **arrays):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    return str(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a,b,c\n1,2,3\n4,,6\n", "line 3, column 'b': '' is not a number"),
        ("a,b,c\n1,2, \n", "line 2, column 'c': ' ' is not a number"),
        ("a,b\n1,2\n3,4,5\n", "line 3 has 3 fields, the header has 2; fix the ragged row"),
        ("a,,c\n1,2,3\n", "column 2 has no name"),
    ],
    ids=["empty-cell", "blank-cell", "long-row", "unnamed-column"],
)
def test_one_bad_cell_among_numbers_is_named(tmp_path, content, message):
    with pytest.raises(DlportError, match=message):
        load_dataset(write(tmp_path, "bad.csv", content))


def test_blank_lines_and_a_bom_are_skipped(tmp_path):
    data = load_dataset(write(tmp_path, "ok.csv", "\ufeffa,b\n\n1,2\n , \n3,4\n"))
    assert data.feature_names == ("a",) and data.X.tolist() == [[1], [3]]
    assert data.y.tolist() == [2, 4] and data.source.endswith("ok.csv")


def test_the_nan_is_located_by_its_data_row(tmp_path):
    with pytest.raises(DlportError, match=r"target contain NaN or inf \(first at data row 3\)"):
        load_dataset(write(tmp_path, "nan.csv", "a,b\n1,2\n3,4\n5,nan\n"))
    with pytest.raises(DlportError, match=r"features contain NaN or inf \(first at data row 2\)"):
        load_dataset(write(tmp_path, "inf.csv", "a,b\n1,2\n-inf,4\n"))


@pytest.mark.parametrize(
    "spec",
    [
        "synthetic:d=0",
        "synthetic:noise=-0.1",
        "synthetic:seed=-1",
        "synthetic:n=0",
        "synthetic:n",
        "synthetic:d=1.5",
    ],
)
def test_synthetic_specs_out_of_range_are_refused(spec):
    with pytest.raises(DlportError, match="synthetic"):
        load_dataset(spec)


def test_synthetic_spec_edges_and_its_canonical_name():
    assert parse_synthetic("synthetic") == {"n": 1000, "d": 8, "noise": 0.1, "seed": 0}
    assert parse_synthetic("synthetic: n=1 , d=1,noise=0,seed=0,") == {
        "n": 1,
        "d": 1,
        "noise": 0.0,
        "seed": 0,
    }
    data = load_dataset("synthetic:n=5,d=2,noise=0,seed=3")
    assert data.source == "synthetic:n=5,d=2,noise=0,seed=3" and data.X.shape == (5, 2)
    np.testing.assert_allclose(data.X @ data.true_weights + data.true_bias, data.y, atol=1e-12)
    assert data.feature_names == ("x0", "x1") and data.target_name == "y"
    assert np.all(np.abs(data.true_weights) <= 2) and abs(data.true_bias) <= 2


def test_npz_y_of_shape_n_by_1_is_a_vector(tmp_path):
    data = load_dataset(npz(tmp_path, X=np.ones((3, 2)), y=np.arange(3.0)[:, None]))
    assert data.y.shape == (3,) and data.y.tolist() == [0, 1, 2] and data.target_name == "y"


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"X": np.ones((3, 0)), "y": np.ones(3)}, r"is empty \(shape \(3, 0\)\)"),
        ({"X": np.ones((3, 2)), "y": np.ones((3, 2))}, r"y must be 1-D, got shape \(3, 2\)"),
        ({"X": np.ones((2, 2)), "y": np.ones(2), "target_name": "x"}, "duplicate column"),
        (
            {"X": np.ones((2, 2)), "y": np.ones(2), "feature_names": np.array(["a"])},
            "1 feature names for 2 columns",
        ),
    ],
    ids=["no-columns", "2-d-y", "target-named-like-a-feature", "too-few-names"],
)
def test_npz_shapes_that_cannot_train_are_refused(tmp_path, arrays, message):
    if "target_name" in arrays:
        arrays["feature_names"] = np.array(["x", "z"])
    with pytest.raises(DlportError, match=message):
        load_dataset(npz(tmp_path, **arrays))


def test_npz_names_are_read_back(tmp_path):
    path = npz(
        tmp_path,
        X=np.eye(2),
        y=np.ones(2),
        feature_names=np.array(["p", "q"]),
        target_name=np.array("t"),
    )
    data = load_dataset(path)
    assert data.feature_names == ("p", "q") and data.target_name == "t" and data.source == path


def test_predict_reads_a_named_npz_without_its_target(tmp_path):
    path = npz(tmp_path, X=np.array([[1.0, 2.0], [3.0, 4.0]]), feature_names=np.array(["a", "b"]))
    X, y = load_features(path, ["b", "a"], "t")
    assert X.tolist() == [[2, 1], [4, 3]] and y is None
    with pytest.raises(DlportError, match=r"lacks the model's feature column\(s\) \['c'\]"):
        load_features(path, ["a", "c"], "t")


def test_predict_reads_a_named_npz_with_its_target(tmp_path):
    path = npz(
        tmp_path,
        X=np.array([[1.0, 2.0], [3.0, 4.0]]),
        y=np.array([5.0, 6.0]),
        feature_names=np.array(["a", "b"]),
        target_name=np.array("t"),
    )
    X, y = load_features(path, ["b"], "t")
    assert X.tolist() == [[2], [4]] and y.tolist() == [5, 6]


def test_predict_reads_an_unnamed_npz_and_its_y_by_count(tmp_path):
    X, y = load_features(npz(tmp_path, X=np.eye(2), y=np.array([7.0, 8.0])), ["p", "q"], "t")
    assert X.tolist() == [[1, 0], [0, 1]] and y.tolist() == [7, 8]


@pytest.mark.parametrize(
    ("content", "features"),
    [("a,b,t\n1,nan,3\n", ["a", "b"]), ("a,b,t\n1,2,inf\n", ["a", "b"])],
    ids=["feature", "target"],
)
def test_nan_in_a_predict_csv_is_refused(tmp_path, content, features):
    with pytest.raises(DlportError, match="contains NaN or inf; drop or impute those rows"):
        load_features(write(tmp_path, "p.csv", content), features, "t")


def test_predict_csv_without_the_target_and_an_unused_nan_column(tmp_path):
    path = write(tmp_path, "p.csv", "b,junk,a\n1,nan,2\n3,nan,4\n")
    X, y = load_features(path, ["a", "b"], "t")
    assert X.tolist() == [[2, 1], [4, 3]] and y is None


def test_predict_on_synthetic_matches_by_count():
    X, y = load_features("synthetic:n=4,d=2", ["u", "v"], "w")
    data = load_dataset("synthetic:n=4,d=2")
    assert np.array_equal(X, data.X) and np.array_equal(y, data.y)


# -- every refusal is one exact line: the problem, then the fix ------------------------------------
def refused(call, *args, **kwargs) -> str:
    with pytest.raises(DlportError) as caught:
        call(*args, **kwargs)
    return str(caught.value)


CSV_REFUSALS = [
    ("a,b\n1,2\n3,4,5\n", "{p} line 3 has 3 fields, the header has 2; fix the ragged row"),
    (
        "a,b\n1,x\n",
        "{p} line 2, column 'b': 'x' is not a number; dlport needs numeric columns",
    ),
    ("a,b\n1," + "9" * 200_000 + "\n", "{p} is not valid CSV (field larger than field limit"),
    ("\n \n", "{p} is empty; it needs a header row and at least one data row"),
    ("a,b\n", "{p} has a header but no data rows"),
    ("a, ,c\n1,2,3\n", "{p}: column 2 has no name; name every header column"),
    (
        "a,b,a,b\n1,2,3,4\n",
        "{p}: duplicate column name(s) 'a', 'b'; give every column its own name",
    ),
    ("a\n1\n", "{p} needs at least two columns (features and a target)"),
    ("a,b\n1,2\n", "target column 'z' not in {p}; columns are: a, b"),
    (
        "a,b\n1,2\n1e308,2\n-1e308,2\n",
        "{p}: column 'a' overflows float64 arithmetic (its mean or variance is infinite); "
        "rescale the data, e.g. divide the column by a power of 10",
    ),
    (
        "a,b\n1,2\n3,nan\n",
        "{p}: target contain NaN or inf (first at data row 2); drop or impute those rows",
    ),
]


@pytest.mark.parametrize(
    ("content", "message"),
    CSV_REFUSALS,
    ids=[
        "ragged",
        "non-numeric",
        "field-limit",
        "blank",
        "no-rows",
        "unnamed",
        "duplicates",
        "one-column",
        "no-target",
        "overflow",
        "nan",
    ],
)
def test_csv_refusals_are_exact(tmp_path, content, message):
    path = write(tmp_path, "bad.csv", content)
    target = "z" if "'z'" in message else None
    assert refused(load_dataset, path, target).startswith(message.format(p=path))


def test_file_and_spec_refusals_are_exact(tmp_path):
    assert refused(load_dataset, " /no/such.csv ") == (
        "data file not found: /no/such.csv; give a .csv(.gz), .npz, .parquet or .feather path, "
        "'diabetes', or 'synthetic:n=1000,d=8,noise=0.1,seed=0'"
    )
    assert refused(load_dataset, "synthetic:n=5,q=3") == (
        "bad synthetic spec item 'q=3'; use synthetic:n=1000,d=8,noise=0.1,seed=0"
    )
    assert refused(load_dataset, "synthetic:n=5=6") == "synthetic n must be a number, got '5=6'"
    assert refused(load_dataset, "synthetic:d=0") == (
        "synthetic data needs n >= 1, d >= 1, noise >= 0 and seed >= 0"
    )
    path = tmp_path / "latin.csv"
    path.write_bytes("a,b\n\xe9,1\n".encode("latin-1"))
    assert refused(load_dataset, str(path)) == (
        f"{path} is not UTF-8 text (byte 4); save it as UTF-8 CSV"
    )


NPZ_REFUSALS = [
    ({"X": np.ones((3, 2))}, "{p} lacks array(s) ['y']; save it with np.savez(path, X=X, y=y)"),
    ({"y": np.ones(3)}, "{p} lacks array(s) ['X']; save it with np.savez(path, X=X, y=y)"),
    ({"X": np.array([["a"]]), "y": np.ones(1)}, "{p}: X must be a numeric array, got <U1"),
    ({"X": np.ones((1, 1)), "y": np.array(["a"])}, "{p}: y must be a numeric array, got <U1"),
    (
        {"X": np.ones((1, 1)), "y": np.ones(1), "feature_names": np.array([1 + 2j])},
        "{p}: feature_names must be a string array, got complex128",
    ),
    ({"X": np.ones(3), "y": np.ones(3)}, "{p}: X must be 2-D (samples x features), got shape (3,)"),
    ({"X": np.ones((3, 1)), "y": np.ones(4)}, "{p}: X has 3 rows but y has 4; they must match"),
    (
        {"X": np.ones((3, 0)), "y": np.ones(3)},
        "{p} is empty (shape (3, 0)); it needs at least one row",
    ),
    (
        {"X": np.ones((2, 2)), "y": np.ones(2), "feature_names": np.array(["a"])},
        "{p}: 1 feature names for 2 columns",
    ),
    (
        {"X": np.array([[1.0], [np.inf]]), "y": np.ones(2)},
        "{p}: features contain NaN or inf (first at data row 2); drop or impute those rows",
    ),
]


@pytest.mark.parametrize(
    ("arrays", "message"),
    NPZ_REFUSALS,
    ids=[
        "no-y",
        "no-X",
        "string-X",
        "string-y",
        "complex-names",
        "1-d-X",
        "rows",
        "no-columns",
        "names",
        "inf",
    ],
)
def test_npz_refusals_are_exact(tmp_path, arrays, message):
    path = npz(tmp_path, **arrays)
    assert refused(load_dataset, path) == message.format(p=path)


def test_npz_damage_is_refused_exactly(tmp_path):
    path = tmp_path / "bad.npz"
    path.write_bytes(b"not a zip")
    assert (
        refused(load_dataset, str(path)) == f"cannot read {path} as .npz (File is not a zip file)"
    )
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("X.npy", b"\x93NUMPY\x09\x00rest")
        zf.writestr("y.npy", b"")
    assert refused(load_dataset, str(path)) == (
        f"cannot read {path} as .npz (X.npy is not a version 1 or 2 .npy array)"
    )
    buffer = io.BytesIO()
    np.save(buffer, np.ones(4))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("X.npy", buffer.getvalue()[:-8])
        zf.writestr("y.npy", buffer.getvalue())
    assert refused(load_dataset, str(path)) == (
        f"{path}: X.npy is truncated or corrupted (its header describes 32 bytes of data); "
        "save it again"
    )


def test_npz_is_never_unpickled_even_past_its_checks(tmp_path, monkeypatch):
    path = npz(tmp_path, X=np.array([[1]], dtype=object), y=np.ones(1))
    monkeypatch.setattr(data_module, "_check_npz", lambda path: None)
    assert refused(load_dataset, path).startswith(f"cannot read {path} as .npz (Object arrays")


def test_predict_refusals_are_exact(tmp_path):
    path = write(tmp_path, "p.csv", "a,b\n1,2\n")
    assert refused(load_features, path, ["a", "c"], "t") == (
        f"{path} lacks the model's feature column(s) ['c']; it has: a, b"
    )
    nan = write(tmp_path, "nan.csv", "a,t\n1,nan\n")
    assert refused(load_features, nan, ["a"], "t") == (
        f"{nan} contains NaN or inf; drop or impute those rows"
    )
    big = write(tmp_path, "big.csv", "a,t\n1e308,1\n-1e308,1\n")
    assert refused(load_features, big, ["a"], "t").startswith(
        f"{big}: column 'a' overflows float64 arithmetic"
    )
    assert refused(load_features, "synthetic:n=3,d=2", ["a"], "t") == (
        "synthetic:n=3,d=2 has 2 features but the model was trained on 1; "
        "give data with the training features"
    )


# -- memory: measured, refused before allocating, sized in MB or GB --------------------------------
@pytest.mark.parametrize(
    ("n", "text"),
    [
        (2_050_001, "2.1 MB"),
        (999_999_999, "1000.0 MB"),
        (1e9, "1.0 GB"),
        (2_050_000_001, "2.1 GB"),
    ],
    ids=["MB", "just-under-a-GB", "a-GB", "GB"],
)
def test_sizes_are_in_mb_below_a_gb(n, text):
    assert data_module._size(n) == text


def test_available_memory_reads_meminfo_then_sysconf(monkeypatch):
    meminfo = {"/proc/meminfo": "MemTotal:  9999 kB\nMemAvailable:    2048 kB\n"}
    monkeypatch.setattr(data_module, "open", lambda p: io.StringIO(meminfo[p]), raising=False)
    assert data_module.available_memory() == 2048 * 1024

    def no_proc(*args):
        raise OSError("no /proc here")

    sysconf = {"SC_AVPHYS_PAGES": 3, "SC_PAGE_SIZE": 4096}
    monkeypatch.setattr(data_module, "open", no_proc, raising=False)
    monkeypatch.setattr(os, "sysconf", sysconf.__getitem__)
    assert data_module.available_memory() == 3 * 4096
    monkeypatch.setattr(os, "sysconf", lambda name: int("unknown"))
    assert data_module.available_memory() is None


@pytest.fixture()
def memory(monkeypatch):
    """Available memory, as the test sets it."""
    available = {"bytes": None}
    monkeypatch.setattr(data_module, "available_memory", lambda: available["bytes"])
    return available


def test_data_larger_than_memory_is_refused_exactly(tmp_path, memory):
    memory["bytes"] = 2e9
    assert refused(load_dataset, "synthetic:n=1000000,d=1000") == (
        "synthetic:n=1000000,d=1000 needs 8.0 GB of memory (X alone) but 2.0 GB is available; "
        "use a smaller n or d"
    )
    memory["bytes"] = 8_000_000  # exactly what n=1000000,d=1 needs: accepted
    big = load_dataset("synthetic:n=1000000,d=1,seed=1", max_memory="1GB")
    assert big.X.shape == (1000000, 1)
    # Without --max-memory, training may hold half the memory available: these rows stream.
    streamed = load_dataset("synthetic:n=1000000,d=1,seed=1")
    assert (type(streamed).__name__, streamed.max_memory) == ("StreamedDataset", 4_000_000)
    memory["bytes"] = 100
    path = write(tmp_path, "d.csv", "a,b\n" + "1,2\n" * 30)
    size = os.path.getsize(path)
    assert refused(load_dataset, path, max_memory="1GB") == (
        f"{path} needs {2 * size / 1e6:.1f} MB of memory (at least 2x its size) but 0.0 MB is "
        "available; lower --max-memory so that it streams"
    )
    assert load_dataset(path).n_samples == 30  # past half of what is available: streamed
    arrays = npz(tmp_path, X=np.ones((100, 2)), y=np.ones(100))
    assert refused(load_dataset, arrays) == (
        f"{arrays} needs 0.0 MB of memory (its arrays alone) but 0.0 MB is available; "
        "use a smaller file"
    )
    memory["bytes"] = None  # the system does not say: nothing is refused
    assert load_dataset(arrays).n_samples == 100


def test_predict_reads_bundled_data_by_name_and_names_a_bad_cell(tmp_path):
    X, y = load_features("diabetes", ["bmi", "age"], "progression")
    data = load_dataset("diabetes")
    names = list(data.feature_names)
    assert np.array_equal(X, data.X[:, [names.index("bmi"), names.index("age")]])
    assert np.array_equal(y, data.y)
    path = write(tmp_path, "p.csv", "a,t\n1,2\nq,3\n")
    assert refused(load_features, path, ["a"], "t") == (
        f"{path} line 3, column 'a': 'q' is not a number; dlport needs numeric columns"
    )


def test_synthetic_data_is_pinned():
    # Computed once: the coefficients, the noise and its sign are part of the seed's contract.
    data = load_dataset("synthetic:n=3,d=2,noise=0.5,seed=7")
    assert data.true_weights.tolist() == [-1.978938781737701, 1.2849136735310651]
    assert data.true_bias == 1.188277715008185
    want = [1.259468092962628, 0.8313671424650817, 0.992306650962738]  # X @ w: BLAS may round
    assert data.y.tolist() == pytest.approx(want, rel=1e-13)


def test_saved_npz_loads_back_the_same_dataset(tmp_path):
    data = load_dataset("diabetes", target="bmi")
    path = tmp_path / "data.npz"
    data_module.save_npz(data, path)
    again = load_dataset(str(path))
    assert np.array_equal(again.X, data.X) and np.array_equal(again.y, data.y)
    assert (again.feature_names, again.target_name) == (data.feature_names, "bmi")


def test_numeric_npz_feature_names_are_names(tmp_path):
    path = npz(tmp_path, X=np.eye(2), y=np.ones(2), feature_names=np.array([10, 20]))
    assert load_dataset(path).feature_names == ("10", "20")


def test_overflow_is_refused_without_numpy_warnings_naming_its_column(tmp_path):
    path = write(tmp_path, "big.csv", "a,b,t\n1,1e308,1\n2,-1e308,1\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert refused(load_dataset, path).startswith(f"{path}: column 'b' overflows float64")
        assert refused(load_features, path, ["a", "b"], "t").startswith(
            f"{path}: column 'b' overflows float64"
        )


def test_partial_sums_of_opposite_overflows_are_refused_without_warnings(tmp_path):
    # NumPy sums a column pairwise: +1e308 + 1e308 and -1e308 - 1e308 meet as inf - inf.
    y = np.zeros(16)
    y[[0, 8]], y[[1, 9]] = 1e308, -1e308
    path = npz(tmp_path, X=np.ones((16, 1)), y=y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert refused(load_dataset, path).startswith(f"{path}: column 'y' overflows float64")


def test_npz_name_refusals_name_the_file(tmp_path):
    path = npz(tmp_path, X=np.eye(2), y=np.ones(2), feature_names=np.array(["a", "a"]))
    assert refused(load_dataset, path) == (
        f"{path}: duplicate column name(s) 'a'; give every column its own name"
    )
    unnamed = npz(tmp_path, X=np.eye(2))
    assert refused(load_features, unnamed, ["p"], "t") == (
        f"{unnamed} has 2 features but the model was trained on 1; "
        "give data with the training features"
    )


def test_an_integer_npz_becomes_float64(tmp_path):
    data = load_dataset(npz(tmp_path, X=np.arange(4).reshape(2, 2), y=np.array([1, 2])))
    assert data.X.dtype == np.float64 and data.y.dtype == np.float64
    assert data.X.tolist() == [[0, 1], [2, 3]] and data.y.tolist() == [1, 2]


def test_an_overflowing_target_is_named(tmp_path):
    path = write(tmp_path, "big.csv", "a,b\n1,1e308\n2,-1e308\n")
    assert refused(load_dataset, path) == (
        f"{path}: column 'b' overflows float64 arithmetic (its mean or variance is infinite); "
        "rescale the data, e.g. divide the column by a power of 10"
    )


# Arrow input, gzip sizing and the pyarrow CSV path (the mutation run after they were added).


def parquet(tmp_path, name="d.parquet", **columns):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / name
    pq.write_table(pa.table(columns), path)
    return str(path)


def test_a_parquet_file_is_named_in_its_refusals_and_takes_a_target(tmp_path, memory):
    path = parquet(tmp_path, a=[1.0, 2.0, 3.0], t=[4.0, 5.0, 6.0], b=[0.0, 1.0, 1.0])
    data = load_dataset(path, "t")
    assert (data.feature_names, data.target_name, data.source) == (("a", "b"), "t", path)
    assert data.y.tolist() == [4.0, 5.0, 6.0]
    bad = parquet(tmp_path, "bad.parquet", a=[1.0, 2.0], y=["x", "z"])
    assert refused(load_dataset, bad).startswith(f"{bad}, column 'y': type string")
    twice = tmp_path / "twice.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table([[1.0], [2.0]], names=["y", "y"]), twice)
    assert refused(load_dataset, str(twice)).startswith(f"{twice}: duplicate column name")
    memory["bytes"] = 8 * 3 * 3 - 1  # 3 rows x 3 columns of float64, one byte short
    assert refused(load_dataset, path, max_memory="1GB") == (
        f"{path} needs 0.0 MB of memory (its values as float64) but 0.0 MB is available; "
        "use a smaller file"
    )
    memory["bytes"] = 8 * 3 * 3
    assert load_dataset(path, max_memory="1GB").n_samples == 3
    # By default (half of the 72 bytes available) it would stream, a row group at a time.
    assert refused(load_dataset, path) == (
        f"{path}: a row group has 3 rows but --max-memory 36B holds 1 rows at a time; "
        "raise --max-memory, or rewrite the file with smaller row groups (pyarrow: "
        "row_group_size)"
    )


def test_predict_reads_a_parquet_file_by_column_name(tmp_path):
    path = parquet(tmp_path, b=[1.0, 2.0], t=[9.0, 8.0], a=[3.0, 4.0])
    X, y = load_features(path, ["a", "b"], "t")
    assert X.tolist() == [[3.0, 1.0], [4.0, 2.0]] and y.tolist() == [9.0, 8.0]
    bad = parquet(tmp_path, "bad.parquet", a=[1.0, None])
    assert refused(load_features, bad, ["a"], "t").startswith(f"{bad}, column 'a': data row 2")


def test_predict_reads_a_named_npz_without_a_target(tmp_path):
    path = npz(tmp_path, X=np.array([[1.0, 2.0], [3.0, 4.0]]), feature_names=np.array(["p", "q"]))
    X, y = load_features(path, ["q", "p"], "t")
    assert X.tolist() == [[2.0, 1.0], [4.0, 3.0]] and y is None


def test_a_gzip_file_is_sized_by_its_trailer_before_it_is_decompressed(tmp_path, memory):
    import gzip

    path = tmp_path / "d.csv.gz"
    path.write_bytes(gzip.compress(b"a,b\n" + b"1,2\n" * 250_000))  # 1,000,004 bytes inside
    memory["bytes"] = 2_000_007  # 2x the decompressed size, minus one
    assert refused(load_dataset, str(path)) == (
        f"{path} needs 2.0 MB of memory (at least 2x its size) but 2.0 MB is available; "
        "decompress it (gunzip): a plain CSV past --max-memory streams"
    )
    memory["bytes"] = 2_000_008
    assert load_dataset(str(path)).n_samples == 250_000
    tiny = tmp_path / "tiny.csv.gz"
    tiny.write_bytes((3_000_000_000).to_bytes(4, "little"))  # 4 bytes: all trailer
    memory["bytes"] = 10**9
    assert refused(load_dataset, str(tiny)).startswith(f"{tiny} needs 6.0 GB of memory")


def test_pyarrow_reads_a_csv_from_exactly_its_threshold_and_names_the_file(tmp_path, monkeypatch):
    from dlport.common import arrow

    calls = []
    csv_table = arrow.csv_table
    monkeypatch.setattr(arrow, "csv_table", lambda path: calls.append(1) or csv_table(path))
    path = write(tmp_path, "d.csv", "a,b\n1,2\n3,4\n")
    monkeypatch.setattr(data_module, "ARROW_CSV_FROM", os.path.getsize(path))
    assert load_dataset(path).X.tolist() == [[1.0], [3.0]] and calls == [1]
    twice = write(tmp_path, "twice.csv", "a,a\n1,2\n3,4\n")
    monkeypatch.setattr(data_module, "ARROW_CSV_FROM", 0)
    assert refused(load_dataset, twice).startswith(f"{twice}: duplicate column name")


@pytest.mark.parametrize(
    ("spec", "why"),
    [("npz", "holds X and y apart"), ("synthetic:n=10", "generates its target y")],
    ids=["npz", "synthetic"],
)
def test_a_target_is_refused_where_there_are_no_columns_to_choose_from(tmp_path, spec, why):
    spec = npz(tmp_path, X=np.ones((3, 1)), y=np.ones(3)) if spec == "npz" else spec
    assert refused(load_dataset, spec, "y") == (
        f"a target column does not apply to {spec}: it {why}; drop --target"
    )
    assert load_dataset(spec).n_samples in (3, 10)
