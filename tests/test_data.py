"""Loading and validating datasets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlport.common.data import load_dataset
from dlport.common.errors import DlportError


def write(tmp_path, name, text, mode="w"):
    path = tmp_path / name
    path.write_bytes(text) if mode == "wb" else path.write_text(text)
    return str(path)


def test_bundled_diabetes():
    data = load_dataset("diabetes")
    assert data.X.shape == (442, 10) and data.y.shape == (442,)
    assert data.feature_names[:3] == ("age", "sex", "bmi")
    assert data.target_name == "progression"
    assert data.X.dtype == np.float64
    assert data.y[:3].tolist() == [151.0, 75.0, 141.0]


def test_synthetic_is_seeded_and_carries_its_truth():
    a = load_dataset("synthetic:n=50,d=3,noise=0,seed=7")
    b = load_dataset("synthetic:n=50,d=3,noise=0,seed=7")
    c = load_dataset("synthetic:n=50,d=3,noise=0,seed=8")
    assert np.array_equal(a.X, b.X) and not np.array_equal(a.X, c.X)
    np.testing.assert_allclose(a.X @ a.true_weights + a.true_bias, a.y, atol=1e-12)
    assert a.source == "synthetic:n=50,d=3,noise=0,seed=7"


def test_csv_target_column_and_default(tmp_path):
    path = write(tmp_path, "d.csv", "a,t,b\n1,10,2\n3,20,4\n")
    data = load_dataset(path, target="t")
    assert data.feature_names == ("a", "b")
    assert data.X.tolist() == [[1, 2], [3, 4]] and data.y.tolist() == [10, 20]
    assert load_dataset(path).target_name == "b"


def test_npz(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.ones((4, 2)), y=np.arange(4.0))
    data = load_dataset(str(path))
    assert data.X.shape == (4, 2) and data.feature_names == ("x0", "x1")


@pytest.mark.parametrize(
    ("content", "target", "message"),
    [
        ("a,b\n1,2\n", "zzz", "target column 'zzz' not in"),
        ("a,b\n1,x\n", None, "'x' is not a number"),
        ("a,b\n1,nan\n", None, "NaN or inf"),
        ("a,b\n1,inf\n", None, "NaN or inf"),
        ("a,b\n", None, "no data rows"),
        ("", None, "is empty"),
        ("a,b\n1,2\n3\n", None, "line 3 has 1 fields"),
        ("a\n1\n", None, "at least two columns"),
    ],
    ids=[
        "missing-target",
        "non-numeric",
        "nan",
        "inf",
        "no-rows",
        "empty-file",
        "ragged",
        "one-column",
    ],
)
def test_bad_csv_is_refused(tmp_path, content, target, message):
    with pytest.raises(DlportError, match=message):
        load_dataset(write(tmp_path, "bad.csv", content), target)


def test_non_utf8_csv_is_refused(tmp_path):
    with pytest.raises(DlportError, match="not UTF-8"):
        load_dataset(write(tmp_path, "latin.csv", "a,b\n\xe9,1\n".encode("latin-1"), "wb"))


def test_missing_file_is_refused():
    with pytest.raises(DlportError, match="data file not found"):
        load_dataset("/nonexistent/data.csv")


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"X": np.ones((3, 2)), "y": np.ones(4)}, "must match"),
        ({"X": np.ones((0, 2)), "y": np.ones(0)}, "is empty"),
        ({"X": np.ones(3), "y": np.ones(3)}, "must be 2-D"),
        ({"X": np.ones((3, 2))}, "lacks array"),
        ({"X": np.array([["a"]]), "y": np.ones(1)}, "numeric"),
    ],
    ids=["length-mismatch", "empty", "1-d-X", "no-y", "strings"],
)
def test_bad_npz_is_refused(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DlportError, match=message):
        load_dataset(str(path))


def test_corrupt_npz_is_refused(tmp_path):
    with pytest.raises(DlportError, match="cannot read"):
        load_dataset(write(tmp_path, "bad.npz", b"not a zip", "wb"))


@pytest.mark.parametrize("spec", ["synthetic:n=0", "synthetic:q=3", "synthetic:n=abc"])
def test_bad_synthetic_spec_is_refused(spec):
    with pytest.raises(DlportError):
        load_dataset(spec)


def test_float32_overflow_is_refused_with_a_hint(tmp_path):
    from dlport.common.config import TrainConfig
    from dlport.frameworks.numpy.trainer import NumpyTrainer

    data = load_dataset(write(tmp_path, "big.csv", "a,b\n1e39,1\n2,2\n3,5\n"))
    with pytest.raises(DlportError, match="overflows float32.*--dtype float64"):
        NumpyTrainer().fit(data, TrainConfig(dtype="float32", standardize=False))
    # Standardized, the same data fits float32 comfortably.
    NumpyTrainer().fit(data, TrainConfig(dtype="float32", epochs=1))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_load_or_fail_cleanly(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("csv") / "data.csv"
    path.write_bytes(blob)
    try:
        data = load_dataset(str(path))
    except DlportError:
        return
    assert data.X.ndim == 2 and len(data.y) == data.X.shape[0] >= 1
    assert np.isfinite(data.X).all() and np.isfinite(data.y).all()


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda cols: st.lists(
            st.lists(
                # Beyond ~1e153 a column's variance overflows: refused (test_hardening_data).
                st.floats(min_value=-1e150, max_value=1e150, width=64),
                min_size=cols,
                max_size=cols,
            ),
            min_size=1,
            max_size=20,
        )
    )
)
def test_numeric_tables_round_trip_through_csv(tmp_path_factory, table):
    cols = len(table[0]) + 1
    rows = [[*row, float(i)] for i, row in enumerate(table)]
    header = ",".join(f"c{j}" for j in range(cols))
    text = header + "\n" + "\n".join(",".join(repr(v) for v in row) for row in rows) + "\n"
    path = tmp_path_factory.mktemp("csv") / "t.csv"
    path.write_text(text)
    data = load_dataset(str(path))
    assert data.X.tolist() == [row[:-1] for row in rows]
    assert data.y.tolist() == [row[-1] for row in rows]
