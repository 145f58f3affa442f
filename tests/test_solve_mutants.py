"""The exact solver's documented results (dlport/common/solve.py), pinned against NumPy.

What is pinned, and why it can fail:

* ``Gram`` accumulates ``[X 1 y]^T [X 1 y]`` block by block in float64 (float32 blocks too) and
  counts every block's rows; ``drop_intercept`` zeroes the intercept's row, column and rhs;
  ``all_reduce`` unpacks the engine's summed vector back into matrix, rhs and rows, in float64.
* ``Gram.solve`` gives lstsq's coefficients for a well-conditioned design, whatever the scale of
  its columns (small ones are not mistaken for all-zero ones), for a square design, for a fit
  through the origin with one feature, and for a framework whose solve returns a column; it
  declines (None) a design past ``GRAM_MAX_CONDITION``, and refuses too few rows in one line.
* ``streamed_qr_solve`` gives lstsq's coefficients, 0 for an all-zero column, refuses a names
  list that does not match the design and checks rank at the run's dtype.
* ``check_rank`` refuses a design whose singular value ratio is exactly at the cutoff.
"""

from __future__ import annotations

import numpy as np
import pytest

from dlport.common.errors import DlportError
from dlport.common.solve import GRAM_MAX_CONDITION, Gram, check_rank, streamed_qr_solve

NAMES = ["a", "b", "c"]


def _design(n=40, seed=0, scales=(1.0, 1.0, 1.0)):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, len(scales))) * np.asarray(scales)
    y = X @ np.arange(1.0, len(scales) + 1) + 0.5 + 0.1 * rng.standard_normal(n)
    return X, y


def _block(X, y):
    full = np.column_stack([X, np.ones(len(y)), y])
    return full.T @ full


def _lstsq(X, y):
    return np.linalg.lstsq(np.column_stack([X, np.ones(len(y))]), y, rcond=None)[0]


def _gram(X, y, parts=1):
    gram = Gram()
    for Xp, yp in zip(np.array_split(X, parts), np.array_split(y, parts), strict=True):
        gram.add(_block(Xp, yp), len(yp))
    return gram


def test_gram_accumulates_blocks_and_counts_their_rows():
    X, y = _design()
    whole, parts = _gram(X, y), _gram(X, y, parts=3)
    assert parts.rows == whole.rows == 40
    np.testing.assert_allclose(parts.matrix, whole.matrix, rtol=1e-12)
    np.testing.assert_allclose(parts.rhs, whole.rhs, rtol=1e-12)


def test_gram_accumulates_float32_blocks_in_float64():
    gram = Gram()
    gram.add(np.full((2, 2), 1e8, dtype=np.float32), 1)
    gram.add(np.ones((2, 2), dtype=np.float32), 1)
    assert gram.matrix.dtype == np.float64
    assert float(gram.matrix[0, 0]) == float(gram.rhs[0]) == 100_000_001.0


def test_drop_intercept_zeroes_its_row_column_and_rhs_and_fits_through_the_origin():
    X, y = _design()
    gram = _gram(X, y)
    gram.drop_intercept()
    assert not gram.matrix[-1].any() and not gram.matrix[:, -1].any() and gram.rhs[-1] == 0.0
    coef = gram.solve(NAMES, np.float64, np.linalg.solve)
    expected = np.linalg.lstsq(X, y, rcond=None)[0]
    np.testing.assert_allclose(coef, [*expected, 0.0], rtol=1e-10, atol=1e-12)


def test_one_feature_through_the_origin_is_solved():
    X, y = _design(scales=(2.0,))
    gram = _gram(X, y)
    gram.drop_intercept()
    coef = gram.solve(["a"], np.float64, np.linalg.solve)
    np.testing.assert_allclose(coef, [(X[:, 0] @ y) / (X[:, 0] @ X[:, 0]), 0.0], rtol=1e-12)


def test_all_reduce_unpacks_the_engines_sum_into_matrix_rhs_and_rows():
    X, y = _design()
    gram = _gram(X, y)
    seen = []

    def twice(vector):  # two workers that saw the same rows
        seen.append(np.array(vector))
        return (2 * np.asarray(vector)).tolist()

    matrix, rhs = gram.matrix.copy(), gram.rhs.copy()
    gram.all_reduce(twice)
    assert len(seen[0]) == 4 * 4 + 4 + 1 and seen[0][-1] == 40
    assert gram.matrix.shape == (4, 4) and gram.matrix.dtype == np.float64
    np.testing.assert_array_equal(gram.matrix, 2 * matrix)
    np.testing.assert_array_equal(gram.rhs, 2 * rhs)
    assert gram.rows == 80 and isinstance(gram.rows, int)
    coef = gram.solve(NAMES, np.float64, np.linalg.solve)
    np.testing.assert_allclose(coef, _lstsq(X, y), rtol=1e-10)


def test_all_reduce_keeps_float64_when_the_engine_returns_float32():
    gram = Gram()
    gram.add(np.ones((2, 2)), 3)
    gram.all_reduce(lambda vector: np.asarray(vector, dtype=np.float32) * 2)
    gram.add(np.full((2, 2), 1e-9), 1)  # lost if the sums were left in float32
    # float(): a float32 scalar would compare with the Python float in float32 (NEP 50)
    assert float(gram.matrix[0, 0]) == float(gram.rhs[0]) == 2 + 1e-9 and gram.rows == 7


def test_gram_solve_matches_lstsq_for_columns_of_any_scale():
    X, y = _design(scales=(1e-3, 0.5, 1e4))
    coef = _gram(X, y, parts=2).solve(NAMES, np.float64, np.linalg.solve)
    np.testing.assert_allclose(coef, _lstsq(X, y), rtol=1e-9)


def test_gram_solve_takes_a_square_design():
    X, y = _design(n=4)
    coef = _gram(X, y).solve(NAMES, np.float64, np.linalg.solve)
    np.testing.assert_allclose(coef, np.linalg.solve(np.column_stack([X, np.ones(4)]), y))


def test_gram_solve_takes_a_framework_solve_that_returns_a_column():
    X, y = _design()

    def column_solve(a, b):  # as TensorFlow's does, for a right-hand side made a column
        return np.linalg.solve(a, np.asarray(b)[:, None])

    coef = _gram(X, y).solve(NAMES, np.float64, column_solve)
    np.testing.assert_allclose(coef, _lstsq(X, y), rtol=1e-10)


def test_gram_solve_refuses_too_few_rows_in_one_line():
    X, y = _design(n=3)
    with pytest.raises(DlportError) as error:
        _gram(X, y).solve(NAMES, np.float64, np.linalg.solve)
    message = str(error.value)
    assert "(3 < 4)" in message and "--solver gd" in message and "\n" not in message


def _gram_of_condition(ratio):
    """A Gram whose column-scaled matrix has singular value ratio (of the design) ``ratio``."""
    c = (1 - ratio**2) / (1 + ratio**2)  # eigenvalues 1 - c, 1 + c
    gram = Gram()
    gram.add(np.array([[1.0, c, 1.0], [c, 1.0, 0.5], [1.0, 0.5, 2.0]]), 100)
    return gram


def test_gram_solve_uses_the_normal_equations_up_to_their_condition_limit_only():
    within = _gram_of_condition(1.5 / GRAM_MAX_CONDITION)
    coef = within.solve(["a"], np.float64, np.linalg.solve)
    np.testing.assert_allclose(coef, np.linalg.solve(within.matrix, within.rhs), rtol=1e-9)
    beyond = _gram_of_condition(0.5 / GRAM_MAX_CONDITION)
    assert beyond.solve(["a"], np.float64, np.linalg.solve) is None


def _blocks(X, y, parts=3):
    return list(zip(np.array_split(X, parts), np.array_split(y, parts), strict=True))


def test_streamed_qr_solve_matches_lstsq_for_columns_of_any_scale():
    X, y = _design(scales=(1e-3, 0.5, 1e4))
    coef = streamed_qr_solve(_blocks(X, y), _gram(X, y), NAMES, np.float64)
    np.testing.assert_allclose(coef, _lstsq(X, y), rtol=1e-9)


def test_streamed_qr_solve_gives_an_all_zero_column_coefficient_zero():
    X, y = _design()
    X[:, 1] = 0.0
    coef = streamed_qr_solve(_blocks(X, y), _gram(X, y), NAMES, np.float64)
    expected = _lstsq(X[:, [0, 2]], y)
    np.testing.assert_allclose(coef, [expected[0], 0.0, *expected[1:]], rtol=1e-10)


def test_streamed_qr_solve_refuses_names_that_do_not_match_the_design():
    X, y = _design()
    with pytest.raises(ValueError):
        streamed_qr_solve(_blocks(X, y), _gram(X, y), NAMES[:2], np.float64)


def test_streamed_qr_solve_checks_rank_at_the_runs_dtype():
    X, y = _design()
    noise = np.random.default_rng(1).standard_normal(len(y))
    X[:, 2] = X[:, 0] + 3e-6 * noise  # dependent in float32, not in float64
    gram = _gram(X, y)
    assert streamed_qr_solve(_blocks(X, y), gram, NAMES, np.float64).shape == (4,)
    with pytest.raises(DlportError, match=r"in float32 .*\['a', 'c'\].*use --dtype float64"):
        streamed_qr_solve(_blocks(X, y), gram, NAMES, np.float32)


def test_check_rank_refuses_a_ratio_exactly_at_the_cutoff():
    cutoff = np.finfo(np.float64).eps * 4  # n = 4 rows, p = 2
    with pytest.raises(DlportError, match="<= cutoff"):
        check_rank(np.diag([1.0, cutoff]), ["a", "b"], 4, np.float64)
    check_rank(np.diag([1.0, 2 * cutoff]), ["a", "b"], 4, np.float64)
