"""The NumPy reference against the update rules written out independently, per convention."""

from __future__ import annotations

import numpy as np
import pytest

from dlport.common.config import TrainConfig
from dlport.common.conventions import ADAM_EPS_HAT, CANONICAL, Conventions
from dlport.common.metrics import max_relative_difference
from dlport.frameworks.numpy.trainer import NumpyTrainer, ReferenceRunner

rng = np.random.default_rng(0)
X, Y = rng.standard_normal((40, 3)), rng.standard_normal(40)
W0, B0 = np.array([0.1, -0.2, 0.3]), 0.05


def run(config, conventions=CANONICAL, steps=25):
    runner = ReferenceRunner(X, Y, W0, B0, config, conventions)
    for _ in range(steps):
        runner.step(X, Y)
    return runner.theta


def grad(theta):
    r = X @ theta[:-1] + theta[-1] - Y
    return np.append(2 * X.T @ r / len(Y), 2 * r.mean())


def test_momentum_equals_the_keras_mxnet_velocity_form():
    # Keras/MXNet: v = mu*v - lr*g; p += v (torch's form is the reference's).
    config = TrainConfig(optimizer="momentum", lr=0.05, momentum=0.8)
    theta, v = np.append(W0, B0), np.zeros(4)
    for _ in range(25):
        v = 0.8 * v - 0.05 * grad(theta)
        theta = theta + v
    assert max_relative_difference(run(config), theta) < 1e-13


def test_nesterov_equals_the_keras_form():
    # Keras: v = mu*v - lr*g; p += mu*v - lr*g.
    config = TrainConfig(optimizer="nesterov", lr=0.05, momentum=0.8)
    theta, v = np.append(W0, B0), np.zeros(4)
    for _ in range(25):
        g = grad(theta)
        v = 0.8 * v - 0.05 * g
        theta = theta + 0.8 * v - 0.05 * g
    assert max_relative_difference(run(config), theta) < 1e-13


def test_adam_conventions_differ_only_by_where_eps_sits():
    # eps outside sqrt(v_hat) equals eps-hat with eps_t = eps * sqrt(1 - b2^t): check it by hand.
    config = TrainConfig(optimizer="adam", lr=0.01, eps=1e-3)
    theta, m, v = np.append(W0, B0), np.zeros(4), np.zeros(4)
    for t in range(1, 26):
        g = grad(theta)
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        alpha = 0.01 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        theta = theta - alpha * m / (np.sqrt(v) + 1e-3 * np.sqrt(1 - 0.999**t))
    outside = run(config)
    hat = run(config, Conventions(adam_eps=ADAM_EPS_HAT))
    assert max_relative_difference(outside, theta) < 1e-12
    assert max_relative_difference(hat, outside) > 1e-6  # a large eps makes the forms differ


def test_float32_hyperparameters_round_lr():
    config = TrainConfig(optimizer="sgd", lr=0.1)
    exact = run(config)
    rounded = run(config, Conventions(float32_hyperparameters=True))
    assert 1e-12 < max_relative_difference(rounded, exact) < 1e-6


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_reference_computes_in_the_requested_dtype(dtype):
    runner = ReferenceRunner(
        X.astype(dtype),
        Y.astype(dtype),
        W0.astype(dtype),
        B0,
        TrainConfig(optimizer="adam", dtype=dtype),
        Conventions(),
    )
    runner.step(runner.X, runner.y)
    assert runner.theta.dtype == np.dtype(dtype)


def test_diabetes_exact_is_the_least_squares_optimum_and_adam_gets_within_one_percent(diabetes):
    exact = NumpyTrainer().fit(diabetes, TrainConfig(solver="exact"))
    design = np.hstack([diabetes.X, np.ones((442, 1))])
    expected = np.linalg.lstsq(design, diabetes.y, rcond=None)[0]
    assert max_relative_difference(np.append(exact.weights, exact.bias), expected) < 1e-10
    adam = NumpyTrainer().fit(diabetes, TrainConfig(optimizer="adam"))
    assert adam.metrics["mse"] <= 1.01 * exact.metrics["mse"]


@pytest.mark.parametrize(
    ("conventions", "limit"),
    [
        (CANONICAL, lambda g, m: 0.5 / (np.linalg.norm(g) + 1e-6)),  # torch
        (Conventions(clip_eps=0.0), lambda g, m: 0.5 / np.linalg.norm(g)),  # Keras, optax
        # MXNet: the batch-summed gradient's norm against C * m, 1e-8 added to it
        (
            Conventions(clip_eps=1e-8, clip_summed=True),
            lambda g, m: 0.5 * m / (m * np.linalg.norm(g) + 1e-8),
        ),
    ],
    ids=["torch", "keras-optax", "mxnet"],
)
def test_a_clipped_sgd_step_by_hand(conventions, limit):
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(6, 3)), rng.normal(size=6)
    w0 = rng.normal(size=3)
    runner = ReferenceRunner(X, y, w0, 0.25, TrainConfig(clip_norm=0.5, lr=0.1), conventions)
    residual = X @ w0 + 0.25 - y
    grad = np.append(X.T @ (2 * residual), np.sum(2 * residual)) / 6
    assert np.linalg.norm(grad) > 0.5  # the step clips
    runner.step(X, y)
    expected = np.append(w0, 0.25) - 0.1 * grad * min(1.0, limit(grad, 6))
    np.testing.assert_allclose(runner.theta, expected, rtol=1e-14)


def test_a_small_gradient_is_not_clipped():
    X, y = np.eye(2), np.array([0.01, -0.01])
    clipped = ReferenceRunner(X, y, np.zeros(2), 0.0, TrainConfig(clip_norm=10.0), CANONICAL)
    plain = ReferenceRunner(X, y, np.zeros(2), 0.0, TrainConfig(), CANONICAL)
    clipped.step(X, y), plain.step(X, y)
    assert clipped.theta.tolist() == plain.theta.tolist()


def test_clipping_conventions_are_named_only_for_clipped_runs():
    keras = Conventions(clip_eps=0.0)
    clipped, plain = TrainConfig(clip_norm=1.0).to_dict(), TrainConfig().to_dict()
    assert keras.describe(clipped) == ["clipping adds 0 to the norm, not 1e-06"]
    assert keras.describe(plain) == []
    mxnet = Conventions(clip_eps=1e-8, clip_summed=True)
    assert mxnet.describe(clipped) == [
        "clipping adds 1e-08 to the batch-summed gradient's norm, not 1e-06"
    ]
    assert CANONICAL.describe(clipped) == []


def test_compare_names_the_clipping_convention_only_on_clipped_runs(diabetes):
    from dlport.compare.parity import measure

    keras = NumpyTrainer(Conventions(clip_eps=0.0))
    for clip, notes in ((0.5, ["clipping adds 0 to the norm, not 1e-06"]), (None, [])):
        config = TrainConfig(clip_norm=clip, epochs=2)
        result, canonical = keras.fit(diabetes, config), NumpyTrainer().fit(diabetes, config)
        parity = measure(result, result, canonical)
        assert [note for note, _ in parity.convention_notes[:1]] == (
            ["; ".join(notes)] if notes else []
        )
        if notes:  # sized: the canonical run against the convention's own
            assert parity.convention_notes[0][1] > 1e-9
