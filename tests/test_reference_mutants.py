"""The NumPy reference's less travelled rules, each against a hand computation.

- MXNet's AdamW step size (docs/design.md, "Weight decay"): with float32 hyperparameters and
  ``adamw_rate_times_correction``, adamw's alpha is the product of two C floats, the rate and
  the bias correction; Adam (and adamw without the convention) rounds their product once.
- ``NumpyTrainer._solve_exact`` truncates singular values with the cutoff of the design's own
  dtype (``rank_cutoff``), and ``_gram`` is the block's [X 1 y]^T [X 1 y].
"""

from __future__ import annotations

import numpy as np
import pytest

from dlport.common.config import TrainConfig
from dlport.common.conventions import ADAM_EPS_HAT, Conventions
from dlport.common.metrics import max_relative_difference
from dlport.common.solve import rank_cutoff
from dlport.frameworks.numpy.trainer import NumpyTrainer, ReferenceRunner

rng = np.random.default_rng(5)
X, Y = rng.standard_normal((12, 3)), rng.standard_normal(12)
W0, B0 = np.array([0.4, -0.3, 0.2]), 0.1
LR, WD, STEPS = 0.1, 0.01, 6


def f32(value) -> float:
    return float(np.float32(value))


def hand_adam_eps_hat(optimizer: str, product: bool) -> np.ndarray:
    """Adam's epsilon-hat form with every hyperparameter a C float; adamw decays w (not b) by
    lr*wd*w first. ``product``: alpha = f32(lr) * f32(sqrt(c2)/c1), else f32(lr*sqrt(c2)/c1)."""
    theta, m, v = np.append(W0, B0), np.zeros(4), np.zeros(4)
    b1, b2, eps, lr = f32(0.9), f32(0.999), f32(1e-8), f32(LR)
    for t in range(1, STEPS + 1):
        r = X @ theta[:-1] + theta[-1] - Y
        g = np.append(X.T @ (2 * r), np.sum(2 * r)) * f32(1 / len(Y))
        if optimizer == "adamw":
            theta = theta - lr * f32(WD) * np.array([1.0, 1.0, 1.0, 0.0]) * theta
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        c1, c2 = 1 - 0.9**t, 1 - 0.999**t
        alpha = lr * f32(np.sqrt(c2) / c1) if product else f32(LR * np.sqrt(c2) / c1)
        theta = theta - alpha * m / (np.sqrt(v) + eps)
    return theta


def reference(optimizer: str, conventions: Conventions) -> np.ndarray:
    wd = WD if optimizer == "adamw" else 0.0
    config = TrainConfig(optimizer=optimizer, lr=LR, weight_decay=wd)
    runner = ReferenceRunner(X, Y, W0, B0, config, conventions)
    for _ in range(STEPS):
        runner.step(X, Y)
    return runner.theta


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
@pytest.mark.parametrize("rate_times_correction", [False, True])
def test_only_mxnets_adamw_multiplies_the_rate_and_the_correction_as_two_c_floats(
    optimizer, rate_times_correction
):
    conventions = Conventions(
        adam_eps=ADAM_EPS_HAT,
        float32_hyperparameters=True,
        adamw_rate_times_correction=rate_times_correction,
    )
    product = rate_times_correction and optimizer == "adamw"
    expected = hand_adam_eps_hat(optimizer, product)
    other = hand_adam_eps_hat(optimizer, not product)
    assert max_relative_difference(expected, other) > 1e-11  # the two roundings differ here
    assert max_relative_difference(reference(optimizer, conventions), expected) < 1e-14


def test_solve_exact_truncates_singular_values_under_the_cutoff_of_the_designs_dtype():
    # A float32 design whose singular-value ratio (~5e-8) is under float32's cutoff
    # (eps32 * 3 = 3.6e-7) but far above float64's: the float32 solve treats it as rank 1.
    X32 = np.array([[1.0, 1.0], [1.0, 1.0 + 2.0**-23], [1.0, 1.0]], dtype=np.float32)
    y32 = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    sv = np.linalg.svd(X32.astype(np.float64), compute_uv=False)
    assert rank_cutoff(np.float64, 3, 2) < sv[-1] / sv[0] < rank_cutoff(np.float32, 3, 2)
    coef = NumpyTrainer()._solve_exact(X32, y32, "cpu")
    expected = np.linalg.lstsq(X32, y32, rcond=rank_cutoff(np.float32, 3, 2))[0]
    np.testing.assert_allclose(coef, expected, rtol=1e-6)
    np.testing.assert_allclose(coef, [1.0, 1.0], rtol=1e-5)  # the minimum-norm, rank-1 answer


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gram_is_the_blocks_design_with_a_ones_column_and_the_target_beside_it(dtype):
    Xd, yd = X.astype(dtype), Y.astype(dtype)
    A = np.hstack([Xd, np.ones((len(yd), 1)), yd[:, None]]).astype(np.float64)
    gram = NumpyTrainer()._gram(Xd, yd, "cpu")
    assert gram.dtype == np.float64
    np.testing.assert_allclose(gram, A.T @ A, rtol=1e-12)
    assert gram[-2, -2] == len(yd)  # the intercept column's squared norm: n ones
