"""The NumPy reference's less travelled rules, each against a hand computation.

- MXNet's AdamW step size (docs/design.md, "Weight decay"): with float32 hyperparameters and
  ``adamw_rate_times_correction``, adamw's alpha is the product of two C floats, the rate and
  the bias correction; Adam (and adamw without the convention) rounds their product once.
- ``NumpyTrainer._solve_exact`` truncates singular values with the cutoff of the design's own
  dtype (``rank_cutoff``), and ``_gram`` is the block's [X 1 y]^T [X 1 y].
- A float32 run with weight decay stays float32 (its decay mask too); the trainer's runner
  steps at the schedule ``fit`` gives it; NumPy's only device is the CPU.
- Weight decay coupled (torch) or decoupled (Keras) through momentum; mae's and huber's
  slopes; Keras/MXNet's lr-inside momentum under a schedule (and Adam untouched by it);
  MXNet's Nesterov buffer that takes the decay of the new weight.
"""

from __future__ import annotations

import numpy as np
import pytest

from dlport.common.config import TrainConfig
from dlport.common.conventions import ADAM_EPS_HAT, COUPLED, DECOUPLED, Conventions
from dlport.common.metrics import max_relative_difference
from dlport.common.schedules import Schedule
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


def test_a_float32_run_with_weight_decay_keeps_its_optimizer_state_in_float32():
    X32, Y32, W32 = X.astype(np.float32), Y.astype(np.float32), W0.astype(np.float32)
    config = TrainConfig(optimizer="adam", dtype="float32", weight_decay=0.1)
    runner = ReferenceRunner(X32, Y32, W32, B0, config, Conventions())
    runner.step(X32, Y32)
    state = runner.optimizer_state()
    assert runner.decay_mask.dtype == np.float32
    assert state["first"].dtype == state["second"].dtype == runner.theta.dtype == np.float32


def test_the_trainers_runner_steps_at_the_schedule_it_is_given():
    # fit passes the schedule of the whole dataset's rows; the runner may see fewer (a window).
    config = TrainConfig(lr=0.1, lr_schedule="cosine", epochs=4, batch_size=4)
    schedule = Schedule.for_rows(config, 400)  # 100 steps per epoch, where X has 3
    runner = NumpyTrainer()._runner(X, Y, W0, B0, config, "cpu", schedule)
    assert runner.schedule is schedule
    for _ in range(3):
        runner.step(X[:4], Y[:4])
    assert runner.learning_rate() == schedule.rate(3) != Schedule.for_rows(config, 12).rate(3)


def test_numpy_runs_on_the_cpu_only():
    assert NumpyTrainer().devices() == ["cpu"]


@pytest.mark.parametrize("decoupled", [False, True])
def test_momentums_weight_decay_is_coupled_or_decoupled_as_the_convention_says(decoupled):
    # coupled (torch): g += wd*w, then b = mu*b + g; decoupled (Keras): w -= lr*wd*w first.
    lr, mu, wd, mask = 0.05, 0.8, 0.1, np.array([1.0, 1.0, 1.0, 0.0])
    theta, b = np.append(W0, B0), np.zeros(4)
    for _ in range(STEPS):
        r = X @ theta[:-1] + theta[-1] - Y
        g = np.append(X.T @ (2 * r), np.sum(2 * r)) / len(Y)
        if decoupled:
            theta = theta - lr * wd * mask * theta
        else:
            g = g + wd * mask * theta
        b = mu * b + g
        theta = theta - lr * b
    config = TrainConfig(optimizer="momentum", lr=lr, momentum=mu, weight_decay=wd)
    conventions = Conventions(weight_decay=DECOUPLED if decoupled else COUPLED)
    runner = ReferenceRunner(X, Y, W0, B0, config, conventions)
    for _ in range(STEPS):
        runner.step(X, Y)
    assert max_relative_difference(runner.theta, theta) < 1e-13


def run_steps(config, conventions, steps=STEPS):
    runner = ReferenceRunner(X, Y, W0, B0, config, conventions)
    losses = [runner.step(X, Y) for _ in range(steps)]
    return runner.theta, losses


@pytest.mark.parametrize("loss", ["mae", "huber:0.5"])
def test_mae_and_huber_steps_follow_their_slopes(loss):
    # d loss / d prediction: sign(r) for mae, clip(r, -delta, delta) for huber.
    lr, theta = 0.1, np.append(W0, B0)
    r = X @ W0 + B0 - Y
    assert (r > 0.5).any() and (r < -0.5).any() and (np.abs(r) < 0.5).any()
    for _ in range(STEPS):
        r = X @ theta[:-1] + theta[-1] - Y
        slope = np.sign(r) if loss == "mae" else np.clip(r, -0.5, 0.5)
        theta = theta - lr * np.append(X.T @ slope, np.sum(slope)) / len(Y)
    got, losses = run_steps(TrainConfig(lr=lr, loss=loss), Conventions())
    assert max_relative_difference(got, theta) < 1e-14
    r0 = X @ W0 + B0 - Y
    first = (
        np.abs(r0)
        if loss == "mae"
        else np.where(np.abs(r0) <= 0.5, r0**2 / 2, 0.5 * (np.abs(r0) - 0.25))
    )
    assert losses[0] == pytest.approx(first.mean(), rel=1e-14)


SCHEDULED = {"lr": 0.05, "momentum": 0.8, "lr_schedule": "cosine", "epochs": 10}


@pytest.mark.parametrize("optimizer", ["momentum", "nesterov"])
def test_lr_inside_momentum_accumulates_scheduled_steps(optimizer):
    # Keras/MXNet: m = mu*m + lr_t*g; p -= m (nesterov: p -= mu*m + lr_t*g); full batch, so the
    # cosine schedule changes lr_t at every step.
    config = TrainConfig(optimizer=optimizer, **SCHEDULED)
    schedule = Schedule.for_rows(config, len(Y))
    theta, m = np.append(W0, B0), np.zeros(4)
    for t in range(STEPS):
        r = X @ theta[:-1] + theta[-1] - Y
        g = np.append(X.T @ (2 * r), np.sum(2 * r)) / len(Y)
        lr = schedule.rate(t)
        m = 0.8 * m + lr * g
        theta = theta - (0.8 * m + lr * g if optimizer == "nesterov" else m)
    assert schedule.rate(1) != schedule.rate(2)
    got, _ = run_steps(config, Conventions(momentum_lr_inside=True))
    assert max_relative_difference(got, theta) < 1e-13
    canonical, _ = run_steps(config, Conventions())  # torch's form differs under a schedule
    assert max_relative_difference(canonical, theta) > 1e-6


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_lr_inside_momentum_leaves_adam_alone(optimizer):
    config = TrainConfig(optimizer=optimizer, **SCHEDULED)
    lr_inside, _ = run_steps(config, Conventions(momentum_lr_inside=True))
    canonical, _ = run_steps(config, Conventions())
    np.testing.assert_array_equal(lr_inside, canonical)


@pytest.mark.parametrize("optimizer", ["momentum", "nesterov"])
def test_mxnets_nesterov_buffer_takes_the_decay_of_the_new_weight(optimizer):
    # MXNet's in-place nag_mom_update: after p -= step, m -= lr*wd*step (so that its wd*w reads
    # the new weight); momentum's buffer is untouched.
    lr, mu, wd, mask = 0.05, 0.8, 0.1, np.array([1.0, 1.0, 1.0, 0.0])
    theta, m = np.append(W0, B0), np.zeros(4)
    for _ in range(STEPS):
        r = X @ theta[:-1] + theta[-1] - Y
        g = np.append(X.T @ (2 * r), np.sum(2 * r)) / len(Y) + wd * mask * theta
        m = mu * m + lr * g
        step = mu * m + lr * g if optimizer == "nesterov" else m
        theta = theta - step
        if optimizer == "nesterov":
            m = m - lr * wd * mask * step
    config = TrainConfig(optimizer=optimizer, lr=lr, momentum=mu, weight_decay=wd)
    mxnet = Conventions(momentum_lr_inside=True, nesterov_decay_reads_new_weight=True)
    got, _ = run_steps(config, mxnet)
    assert max_relative_difference(got, theta) < 1e-13
