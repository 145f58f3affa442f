"""The in-memory standardization passes run their blocks on threads: the same bits as the
serial loops, and the first failing block's error in row order."""

import time

import numpy as np
import pytest

from dlport.common import feeds, standardize, threads
from dlport.common.config import TrainConfig
from dlport.common.data import Dataset
from dlport.common.errors import DlportError
from dlport.common.standardize import Moments, Standardizer, column_moments


@pytest.fixture(autouse=True)
def four_workers(monkeypatch):
    """Threads even on a one-CPU machine, more than blocks could finish in order."""
    monkeypatch.setattr(threads, "usable_cpus", lambda: 4)


def test_ordered_map_keeps_order_and_raises_the_first_failure_in_order():
    def fn(i):
        if i == 2:
            time.sleep(0.05)  # the later failure (7) happens first in time
            raise ValueError("two")
        if i == 7:
            raise KeyError("seven")
        return i * i

    assert threads.ordered_map(fn, [0, 1, 3, 4]) == [0, 1, 9, 16]
    with pytest.raises(ValueError, match="two"):
        threads.ordered_map(fn, range(10))


def test_usable_cpus_is_at_least_one(monkeypatch):
    monkeypatch.undo()
    assert threads.usable_cpus() >= 1


@pytest.mark.parametrize("shape", [(1001, 5), (1001,), (40, 3)])
def test_column_moments_equal_the_serial_left_to_right_merge(monkeypatch, shape):
    monkeypatch.setattr(standardize, "_ROWS_PER_BLOCK", 37)  # 28 blocks of 1001 rows, or 2
    rng = np.random.default_rng(5)
    drift = np.linspace(0.0, 1e6, shape[0]).reshape(-1, *[1] * (len(shape) - 1))
    values = rng.normal(size=shape) * 1e3 + drift  # a drifting mean: merge order shows
    want = Moments(0, np.zeros(0), np.zeros(0))
    for start in range(0, len(values), 37):
        want = want.merge(Moments.of(values[start : start + 37]))
    got = column_moments(values)
    assert got.count == want.count == shape[0]
    assert np.array_equal(got.mean, want.mean) and np.array_equal(got.m2, want.m2)


def test_column_moments_honour_the_callers_errstate(monkeypatch):
    monkeypatch.setattr(standardize, "_ROWS_PER_BLOCK", 4)
    values = np.zeros((40, 2))
    values[32:34, 1] = 1e200, -1e200  # squared deviations overflow in a pool thread, and
    # only there: the block's mean is 0, so the merge's delta**2 does not
    with np.errstate(over="raise"), pytest.raises(FloatingPointError):
        column_moments(values)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_arrays_equal_the_serial_blocks(monkeypatch, dtype):
    rng = np.random.default_rng(6)
    X, y = rng.normal(3.0, 2.0, size=(1000, 3)), rng.normal(-1.0, 4.0, size=1000)
    data = Dataset.from_arrays(X, y)
    scaler, config = Standardizer.fit(X, y), TrainConfig(dtype=dtype)
    monkeypatch.setattr(feeds, "_BYTES_PER_BLOCK", 8 * 3 * 9)  # 112 blocks of 9 rows
    Xs, ys = feeds._training_arrays(scaler, data, config)
    for start in range(0, 1000, 9):
        rows = slice(start, start + 9)
        want_X, want_y = feeds.standardized_block(scaler, X[rows], y[rows], config, "arrays")
        assert Xs[rows].tobytes() == want_X.tobytes() and ys[rows].tobytes() == want_y.tobytes()
    assert Xs.dtype == ys.dtype == np.dtype(dtype)


FLOAT32 = r"a value of magnitude 1e\+40 overflows float32"
FLOAT64 = "values too large to standardize in float64"


@pytest.mark.parametrize(
    ("first", "later", "message"),
    [(1e-260, 1e10, FLOAT32), (1e10, 1e-260, FLOAT64)],
    ids=["float32-then-float64", "float64-then-float32"],
)
def test_training_arrays_refuse_with_the_first_failing_block(monkeypatch, first, later, message):
    # Scale 1e-300: 1e-260 standardizes to 1e40 (past float32), 1e10 to inf in float64.
    X = np.zeros((70, 1))
    X[12, 0], X[60, 0] = first, later  # blocks 1 and 6 of 7 rows
    data = Dataset(X, np.zeros(70), ("x",), "y", "two-bad")
    scaler = Standardizer(np.zeros(1), np.array([1e-300]), 0.0, 1.0)
    monkeypatch.setattr(feeds, "_BYTES_PER_BLOCK", 7 * 8)
    serial = feeds.standardized_block

    def slow_first_failure(scaler, X, y, config, source, out=None):
        if first in X:
            time.sleep(0.05)  # the later block fails first in time
        return serial(scaler, X, y, config, source, out)

    monkeypatch.setattr(feeds, "standardized_block", slow_first_failure)
    with pytest.raises(DlportError, match=message):
        feeds._training_arrays(scaler, data, TrainConfig(dtype="float32"))
