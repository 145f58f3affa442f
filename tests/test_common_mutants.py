"""Shared code's documented edges, each pinned by its exact result.

- ``TrainConfig``: the warmup, early-stopping and restore-best refusals, each its exact line.
- ``standardize``: moments merged block by block (Chan et al.) equal NumPy's mean and std of
  the whole array; ``from_moments`` centers by default; ``from_stats`` holds float64.

- ``stream_windows`` (docs/design.md, "Data larger than memory"): the shuffled blocks are
  grouped into windows of *at most* ``window_rows`` rows, so a window may be exactly full, and
  every window, not only the first, starts counting its rows from zero.
"""

from __future__ import annotations

import numpy as np
import pytest

from dlport.common.batching import stream_windows
from dlport.common.config import TrainConfig
from dlport.common.errors import DlportError
from dlport.common.standardize import _ROWS_PER_BLOCK, Moments, Standardizer, column_moments


@pytest.mark.parametrize("blocks", [2, 4, 6])
def test_stream_windows_fill_each_window_up_to_exactly_its_row_limit(blocks):
    windows = stream_windows((2,) * blocks, 4, seed=3, epoch=1)
    assert [len(ids) for ids, _ in windows] == [2] * (blocks // 2)
    assert sorted(b for ids, _ in windows for b in ids) == list(range(blocks))
    for _, perm in windows:
        assert perm.dtype == np.int64 and sorted(perm.tolist()) == [0, 1, 2, 3]


def test_stream_windows_start_a_new_window_only_past_the_limit():
    # Blocks of 3 rows under a 5-row limit: never two in one window.
    windows = stream_windows((3, 3, 3), 5, seed=0, epoch=0)
    assert [len(ids) for ids, _ in windows] == [1, 1, 1]
    # One block over the limit still forms its window alone.
    assert [ids for ids, _ in stream_windows((7,), 5, seed=0, epoch=0)] == [(0,)]


# -- config: each refusal in its one exact line ------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"warmup_epochs": -1}, "warmup_epochs must be a non-negative integer, got -1"),
        ({"warmup_epochs": True}, "warmup_epochs must be a non-negative integer, got True"),
        ({"warmup_epochs": 1.0}, "warmup_epochs must be a non-negative integer, got 1.0"),
        (
            {"early_stopping": 0, "validation": 0.2},
            "early_stopping (patience) must be a positive integer, got 0",
        ),
        (
            {"early_stopping": 2.0, "validation": 0.2},
            "early_stopping (patience) must be a positive integer, got 2.0",
        ),
        (
            {"early_stopping": True, "validation": 0.2},
            "early_stopping (patience) must be a positive integer, got True",
        ),
        (
            {"early_stopping": 3, "validation": 0.2, "solver": "exact"},
            "--early-stopping watches the validation loss of gradient descent; give "
            "--validation FRACTION and --solver gd",
        ),
        (
            {"early_stopping": 3},
            "--early-stopping watches the validation loss of gradient descent; give "
            "--validation FRACTION and --solver gd",
        ),
        ({"restore_best": "yes"}, "restore_best must be true or false"),
        (
            {"restore_best": True},
            "--restore-best belongs to --early-stopping PATIENCE; give both",
        ),
    ],
    ids=lambda v: "-".join(f"{k}-{v[k]}" for k in v) if isinstance(v, dict) else "",
)
def test_warmup_and_early_stopping_refusals_are_exact(changes, message):
    with pytest.raises(DlportError) as caught:
        TrainConfig(**changes)
    assert str(caught.value) == message


def test_early_stopping_with_a_validation_split_and_gradient_descent_is_accepted():
    config = TrainConfig(early_stopping=3, validation=0.2, restore_best=True, warmup_epochs=2)
    assert (config.early_stopping, config.restore_best, config.warmup_epochs) == (3, True, 2)


# -- standardize: moments merged over blocks are the whole array's -----------------------------
def test_merged_moments_equal_the_moments_of_the_concatenated_rows():
    rng = np.random.default_rng(11)
    a = rng.normal(3.0, 2.0, size=(7, 2))
    b = rng.normal(-5.0, 0.5, size=(4, 2))  # another mean: the merge's delta term matters
    merged = Moments.of(a).merge(Moments.of(b))
    whole = np.vstack([a, b])
    assert merged.count == 11
    np.testing.assert_allclose(merged.mean, whole.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(
        merged.m2, ((whole - whole.mean(axis=0)) ** 2).sum(axis=0), rtol=1e-13
    )
    np.testing.assert_allclose(merged.std(), whole.std(axis=0), rtol=1e-13)


def test_column_moments_over_many_blocks_match_numpy():
    rng = np.random.default_rng(12)
    rows = 2 * _ROWS_PER_BLOCK + 100
    values = rng.normal(size=(rows, 2)) + np.linspace(0.0, 40.0, rows)[:, None]  # drifting mean
    moments = column_moments(values)
    assert moments.count == rows
    np.testing.assert_allclose(moments.mean, values.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(moments.std(), values.std(axis=0), rtol=1e-12)


def test_column_moments_of_no_rows_are_empty():
    moments = column_moments(np.zeros((0, 3)))
    assert moments.count == 0 and moments.mean.shape == (0,) and moments.m2.shape == (0,)


def test_from_moments_centers_by_default_as_fit_does():
    rng = np.random.default_rng(13)
    X, y = rng.normal(4.0, 3.0, size=(30, 2)), rng.normal(-2.0, 5.0, size=30)
    made = Standardizer.from_moments(column_moments(X), column_moments(y))
    fitted = Standardizer.fit(X, y)
    np.testing.assert_allclose(made.x_mean, X.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(made.x_scale, X.std(axis=0), rtol=1e-13)
    assert made.y_mean == pytest.approx(y.mean(), rel=1e-14)
    assert made.y_scale == pytest.approx(y.std(), rel=1e-13)
    np.testing.assert_array_equal(made.x_mean, fitted.x_mean)


def test_from_stats_holds_means_and_scales_in_float64_whatever_it_is_given():
    made = Standardizer.from_stats(
        np.array([1.5, 2.5], dtype=np.float32), np.array([2, 0]), 0.0, 1.0
    )
    assert made.x_mean.dtype == np.float64 and made.x_scale.dtype == np.float64
    np.testing.assert_array_equal(made.x_scale, [2.0, 1.0])  # the constant column keeps 1
    f32 = Standardizer.from_stats([0.0], np.array([0.1], dtype=np.float32), 0.0, 1.0)
    assert f32.x_scale.dtype == np.float64 and f32.x_scale[0] == float(np.float32(0.1))
