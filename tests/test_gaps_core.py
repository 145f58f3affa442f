"""Gaps the mutation run found (tox -e mutation): parity, standardization, metrics, config and
the NumPy reference, each pinned to a hand computation."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from dlport.common.batching import epoch_order, iter_batches
from dlport.common.config import TrainConfig, parse_batch_size
from dlport.common.conventions import ADAM_EPS_HAT, CANONICAL, Conventions
from dlport.common.data import load_dataset
from dlport.common.errors import DivergenceError, DlportError
from dlport.common.init import initial_params
from dlport.common.metrics import max_relative_difference, regression_metrics
from dlport.common.standardize import Standardizer
from dlport.compare.parity import (
    Parity,
    loss_difference,
    measure,
    pairwise,
    per_epoch_difference,
)
from dlport.frameworks.numpy.trainer import NumpyTrainer

SMALL = load_dataset("synthetic:n=24,d=3,noise=0.5,seed=1")


def fit(config, conventions=CANONICAL, data=SMALL):
    return NumpyTrainer(conventions).fit(data, config)


def moved(result, loss=None, delta=0.0):
    """``result`` with another loss curve and/or its first weight moved by ``delta``."""
    weights = [result.weights[0] + delta, *result.weights[1:]]
    history = {"loss": result.history["loss"] if loss is None else loss}
    return dataclasses.replace(result, weights=weights, history=history)


# -- compare/parity --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def adam():
    return fit(TrainConfig(optimizer="adam", epochs=3, batch_size=8))


def test_loss_curves_that_differ_are_measured_per_epoch_and_fail_parity(adam):
    loss = adam.history["loss"]
    other = moved(adam, [loss[0], loss[1] + 3e-9, loss[2] - 4.0])
    assert loss_difference(other, adam) == pytest.approx(4.0 / max(1.0, abs(loss[2])))
    expected = [0.0, 3e-9 / max(1.0, loss[1]), 4.0 / max(1.0, loss[2])]
    np.testing.assert_allclose(per_epoch_difference(other, adam), expected, rtol=1e-6, atol=0)
    parity = measure(other, adam, adam)
    assert parity.params_diff == 0.0 and parity.loss_diff == loss_difference(other, adam)
    assert not parity.passed
    assert measure(moved(adam, [loss[0], loss[1] + 3e-10, loss[2]]), adam, adam).passed


def test_the_exact_solver_has_no_loss_curve_to_compare():
    exact = fit(TrainConfig(solver="exact"))
    assert loss_difference(exact, exact) is None
    parity = measure(moved(exact, delta=5e-10), exact, exact)
    assert parity.loss_diff is None and parity.passed
    assert parity.params_diff == pytest.approx(5e-10 / max(1.0, abs(exact.weights[0])))
    assert not measure(moved(exact, delta=2e-9), exact, exact).passed


@pytest.mark.parametrize(
    ("dtype", "tolerance"), [("float64", 1e-9), ("float32", 1e-4)], ids=["float64", "float32"]
)
def test_parity_passes_strictly_under_the_dtype_tolerance(dtype, tolerance):
    result = fit(TrainConfig(epochs=2, dtype=dtype))
    assert measure(result, result, result).tolerance == tolerance
    assert Parity(tolerance, None, tolerance).passed is False
    assert Parity(0.0, tolerance, tolerance).passed is False
    assert Parity(0.5 * tolerance, 0.5 * tolerance, tolerance).passed


def test_convention_notes_name_each_difference_and_its_measured_size():
    config = TrainConfig(optimizer="adam", epochs=3, batch_size=8)
    mxnet = Conventions(adam_eps=ADAM_EPS_HAT, float32_hyperparameters=True)
    canonical, reference = fit(config), fit(config, mxnet)
    result = dataclasses.replace(reference, conventions=mxnet.to_dict())
    (note, size), *rest = measure(result, reference, canonical).convention_notes
    assert not rest and note == "; ".join(mxnet.describe(config.to_dict()))
    assert "'epsilon hat'" in note and "float32 (C float)" in note
    params = [np.append(r.weights, r.bias) for r in (reference, canonical)]
    assert size == max_relative_difference(*params) and size > 0
    # Torch's own conventions, or the exact solver, leave nothing to note.
    assert measure(canonical, canonical, canonical).convention_notes == []
    exact = fit(TrainConfig(solver="exact"), mxnet)
    assert measure(exact, exact, exact).convention_notes == []


def _run(**options) -> dict:
    return TrainConfig(**options).to_dict()


def test_conventions_describe_only_what_touches_the_run():
    hat, f32 = Conventions(adam_eps=ADAM_EPS_HAT), Conventions(float32_hyperparameters=True)
    assert hat.describe(_run(optimizer="adam")) == [
        "Adam adds eps to sqrt(v), not sqrt(v_hat) (the 'epsilon hat' form)"
    ]
    assert hat.describe(_run()) == [] and len(hat.describe(_run(optimizer="adamw"))) == 1
    assert f32.describe(_run()) == ["optimizer hyperparameters are rounded to float32 (C float)"]
    assert f32.describe(_run(optimizer="adam", solver="exact")) == []
    assert CANONICAL.describe(_run(optimizer="adam", weight_decay=0.1)) == []


def test_conventions_name_decoupled_decay_and_lr_inside_momentum_only_where_they_act():
    keras = Conventions(weight_decay="decoupled", momentum_lr_inside=True)
    assert keras.describe(_run(optimizer="momentum")) == []
    assert keras.describe(_run(optimizer="adamw", weight_decay=0.1)) == []
    decay, schedule = keras.describe(_run(optimizer="momentum", weight_decay=0.1, warmup_epochs=1))
    assert "decoupled" in decay and "lr-scaled steps" in schedule


def test_pairwise_compares_every_ordered_pair(adam):
    other = moved(adam, [x * 1.5 for x in adam.history["loss"]], delta=0.25)
    table = pairwise({"a": adam, "b": other})
    assert set(table) == {"a", "b"} and set(table["a"]) == {"b"} and set(table["b"]) == {"a"}
    assert table["b"]["a"] == {
        "params": max_relative_difference(
            np.append(other.weights, other.bias), adam.weights + [adam.bias]
        ),
        "loss": loss_difference(other, adam),
    }
    assert table["a"]["b"]["loss"] == loss_difference(adam, other) > 0


# -- standardize -----------------------------------------------------------------------------------
SCALER = Standardizer(np.array([2.0, -1.0]), np.array([4.0, 0.5]), 10.0, 3.0)


def test_to_original_undoes_each_statistic_with_its_sign():
    weights, bias = SCALER.to_original(np.array([2.0, 1.0]), 0.5)
    # w = y_scale * w_s / x_scale; b = y_mean + y_scale * b_s - w . x_mean
    assert weights.tolist() == [1.5, 6.0]
    assert bias == 10.0 + 1.5 - (1.5 * 2.0 - 6.0 * 1.0)


def test_to_dict_holds_every_statistic_as_plain_lists():
    assert SCALER.to_dict() == {
        "x_mean": [2.0, -1.0],
        "x_scale": [4.0, 0.5],
        "y_mean": 10.0,
        "y_scale": 3.0,
    }
    identity = Standardizer.identity(2).to_dict()
    assert identity == {"x_mean": [0.0, 0.0], "x_scale": [1.0, 1.0], "y_mean": 0.0, "y_scale": 1.0}


@pytest.mark.parametrize("mean", [0.0, 0.1, 1e6, -1e6], ids=["zero", "small", "large", "negative"])
def test_constant_columns_and_targets_keep_scale_one_at_any_mean(mean):
    # One ulp of spread is rounding noise at any magnitude: scale 1, values only centred.
    column = np.full(8, mean)
    column[0] = np.nextafter(mean, np.inf)
    X = np.column_stack([column, np.arange(8.0)])
    scaler = Standardizer.fit(X, column)
    assert scaler.x_scale[0] == 1.0 and scaler.y_scale == 1.0
    assert scaler.x_scale[1] == np.arange(8.0).std() and scaler.y_mean == column.mean()
    Xs, ys = scaler.transform(X, column)
    assert np.abs(Xs[:, 0]).max() < 1e-9 and np.abs(ys).max() < 1e-9


@pytest.mark.parametrize("mean", [0.0, 1e6], ids=["zero", "large"])
def test_a_small_real_spread_is_scaled_at_any_mean(mean):
    # A spread of 1e-9 relative to max(1, |mean|) is 5e6 ulps: data, not noise.
    spread = 1e-9 * max(1.0, abs(mean))
    column = mean + spread * np.array([0.0, 1.0] * 4)
    scaler = Standardizer.fit(column[:, None], column)
    assert scaler.x_scale[0] == pytest.approx(spread / 2) and scaler.y_scale == scaler.x_scale[0]
    assert np.abs(scaler.transform(column[:, None], column)[1]).max() == pytest.approx(1.0)


NOISE = (
    64 * np.finfo(np.float64).eps
)  # 2**-46: the rounding-noise threshold, relative to max(1, |mean|)


@pytest.mark.parametrize(
    ("spread", "mean", "scaled"),
    [(1.0, 0.0, False), (1.5, 0.0, True), (3.0, 4.0, False), (4.0, 4.0, False), (6.0, 4.0, True)],
    ids=["at-threshold", "above", "under-4x-at-mean-4", "at-mean-4", "above-mean-4"],
)
def test_the_noise_threshold_is_inclusive_and_relative_to_max_1_mean(spread, mean, scaled):
    # [m - s, m + s] has mean m and std s exactly: s <= 64 eps * max(1, |m|) is noise.
    s = spread * NOISE
    column = np.array([mean - s, mean + s])
    scaler = Standardizer.fit(column[:, None], column)
    want = s if scaled else 1.0
    assert scaler.x_scale.tolist() == [want] and scaler.y_scale == want


def test_to_original_computes_in_float64_from_any_dtype():
    w = np.array([1 / 3], dtype=np.float32)
    scaler = Standardizer(np.zeros(1), np.ones(1), 0.0, 0.1)
    weights, bias = scaler.to_original(w, np.float32(0.5))
    assert weights.dtype == np.float64 and weights[0] == 0.1 * float(w[0])
    assert bias == 0.1 * 0.5


def test_a_constant_target_trains_to_its_value():
    data = dataclasses.replace(SMALL, y=np.full(SMALL.n_samples, 1e6))
    result = NumpyTrainer().fit(data, TrainConfig(solver="exact"))
    assert result.standardization["y_scale"] == 1.0
    assert np.allclose(result.weights, 0.0, atol=1e-6) and result.bias == pytest.approx(1e6)


# -- metrics ---------------------------------------------------------------------------------------
def test_r2_of_a_constant_target_is_zero_unless_perfect():
    assert regression_metrics(np.full(3, 2.0), np.array([2.0, 2.0, 3.0]))["r2"] == 0.0
    assert regression_metrics(np.full(3, 2.0), np.full(3, 2.0))["r2"] == 1.0
    assert regression_metrics(np.arange(3.0), np.arange(3.0))["r2"] == 1.0


def test_metrics_of_a_negative_residual_and_mae():
    m = regression_metrics(np.array([0.0, 0.0, 0.0, 4.0]), np.array([1.0, -2.0, 0.0, 4.0]))
    assert m == {"mse": 1.25, "rmse": np.sqrt(1.25), "mae": 0.75, "r2": 1 - 5.0 / 12.0}


def test_metrics_are_computed_in_float64_whatever_the_input_dtype():
    # A float32 mean of values near 1e7 rounds: r2 must not depend on the caller's dtype.
    y = np.array([1e7 + 1, 1e7 + 2, 1e7 + 4, 1e7 + 7], dtype=np.float32)
    pred = y + np.float32(0.5)
    assert regression_metrics(y, pred) == regression_metrics(y.astype(np.float64), pred)
    assert y.mean() != y.astype(np.float64).mean()  # the float32 mean differs


def test_max_relative_difference_refuses_other_shapes_and_allows_empty():
    with pytest.raises(ValueError, match=r"cannot compare shapes \(2,\) and \(3,\)"):
        max_relative_difference([1.0, 2.0], [1.0, 2.0, 3.0])
    assert max_relative_difference([], []) == 0.0
    assert max_relative_difference([[1.0, 2.0]], [1.0, 4.0]) == 0.5  # flattened
    assert max_relative_difference([-3.0], [-1.0]) == 2.0


# -- config ----------------------------------------------------------------------------------------
def test_config_defaults_are_pinned():
    assert TrainConfig().to_dict() == {
        "optimizer": "sgd",
        "lr": 0.01,
        "momentum": 0.9,
        "beta1": 0.9,
        "beta2": 0.999,
        "eps": 1e-8,
        "clip_norm": None,
        "weight_decay": 0.0,
        "lr_schedule": "constant",
        "warmup_epochs": 0,
        "loss": "mse",
        "validation": 0.0,
        "early_stopping": None,
        "restore_best": False,
        "epochs": 50,
        "batch_size": 32,
        "seed": 0,
        "dtype": "float64",
        "device": "auto",
        "solver": "gd",
        "standardize": True,
        "fit_intercept": True,
        "tf32": False,
    }


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"solver": "qr"}, "unknown solver 'qr'; choose one of: gd, exact"),
        ({"eps": 0.0}, "eps must be a positive number, got 0.0"),
        ({"eps": -1e-8}, "eps must be a positive number, got -1e-08"),
        ({"lr": float("inf")}, "lr must be a positive number, got inf"),
        ({"lr": "0.1"}, "lr must be a positive number, got '0.1'"),
        ({"epochs": True}, "epochs must be a positive integer, got True"),
        ({"epochs": 0}, "epochs must be a positive integer, got 0"),
        ({"batch_size": 2.0}, "batch size must be a positive integer, got 2.0"),
        ({"momentum": -0.1}, "momentum must be in [0, 1), got -0.1"),
        ({"beta1": 1}, "beta1 must be in [0, 1), got 1"),
        ({"beta2": "0.9"}, "beta2 must be in [0, 1), got '0.9'"),
        ({"seed": 1.0}, "seed must be a non-negative integer, got 1.0"),
        ({"clip_norm": 0.0}, "clip_norm must be a positive number, got 0.0"),
        ({"clip_norm": float("nan")}, "clip_norm must be a positive number, got nan"),
        ({"clip_norm": "1"}, "clip_norm must be a positive number, got '1'"),
        (
            {"optimizer": "SGD"},
            "unknown optimizer 'SGD'; choose one of: sgd, momentum, nesterov, adam, adamw",
        ),
        ({"dtype": "float16"}, "unknown dtype 'float16'; choose one of: float32, float64"),
        ({"device": "tpu"}, "unknown device 'tpu'; choose one of: cpu, gpu, auto"),
        ({"tf32": 1}, "tf32, standardize and fit_intercept must be true or false"),
        ({"standardize": "no"}, "tf32, standardize and fit_intercept must be true or false"),
    ],
    ids=lambda v: (
        "-".join(f"{k}-{v[k]}" for k in v).replace(".", "_") if isinstance(v, dict) else ""
    ),
)
def test_config_refusals_are_exact(changes, message):
    with pytest.raises(DlportError) as caught:
        TrainConfig(**changes)
    assert str(caught.value) == message


def test_unknown_config_keys_are_named_with_the_known_ones():
    with pytest.raises(DlportError) as caught:
        TrainConfig.from_dict({"learning_rate": 1, "lr": 0.1, "zeta": 2})
    assert str(caught.value) == (
        "unknown config keys ['learning_rate', 'zeta']; known keys: ['batch_size', 'beta1', "
        "'beta2', 'clip_norm', 'device', 'dtype', 'early_stopping', 'epochs', 'eps', "
        "'fit_intercept', 'loss', 'lr', 'lr_schedule', 'momentum', 'optimizer', 'restore_best', "
        "'seed', "
        "'solver', 'standardize', 'tf32', 'validation', 'warmup_epochs', 'weight_decay']"
    )
    assert TrainConfig.from_dict({"lr": 0.5}) == TrainConfig(lr=0.5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x", "batch size must be a positive integer or 'full', got 'x'"),
        ("1.5", "batch size must be a positive integer or 'full', got '1.5'"),
        ("-3", "batch size must be a positive integer, got -3"),
        ("0", "batch size must be a positive integer, got 0"),
    ],
    ids=["word", "fraction", "negative", "zero"],
)
def test_batch_size_text_is_refused_exactly(text, message):
    with pytest.raises(DlportError) as caught:
        parse_batch_size(text)
    assert str(caught.value) == message
    assert parse_batch_size(" FULL ") is None and parse_batch_size("7") == 7


def test_config_accepts_the_edges_of_its_ranges():
    edge = TrainConfig(momentum=0, beta1=0.0, beta2=0, seed=0, epochs=1, batch_size=1, lr=1e-300)
    assert (edge.momentum, edge.beta1, edge.beta2, edge.epochs) == (0, 0.0, 0, 1)
    assert TrainConfig(batch_size=None, device="gpu", dtype="float32").batch_size_for(7) == 7
    assert TrainConfig(batch_size=3).batch_size_for(7) == 3
    assert TrainConfig().replace(lr=0.5) == TrainConfig(lr=0.5)


# -- the NumPy reference ---------------------------------------------------------------------------
def exact(x):
    return x


def as_float32(x):
    """A hyperparameter as MXNet holds it: a C float."""
    return float(np.float32(x))


def hand_fit(data, config, update, hyper=exact):
    """Raw-unit minibatch descent written out: (theta, per-epoch losses), each batch's loss
    measured before its step, the epoch's loss the sample-weighted mean."""
    w0, b0 = initial_params(data.n_features, config.seed)
    theta, state, history = np.append(w0, b0), {"t": 0, "b": 0.0, "m": 0.0, "v": 0.0}, []
    n, batch = data.n_samples, config.batch_size_for(data.n_samples)
    for epoch in range(config.epochs):
        total = 0.0
        for idx in iter_batches(epoch_order(n, config.seed, epoch, batch), batch):
            Xb, yb = data.X[idx], data.y[idx]
            residual = Xb @ theta[:-1] + theta[-1] - yb
            total += np.mean(residual**2) * len(idx)
            grad = np.append(2 * Xb.T @ residual, 2 * residual.sum()) * hyper(1 / len(idx))
            theta = update(theta, grad, state, config, hyper)
        history.append(total / n)
    return theta, history


def sgd(theta, g, state, config, hyper):
    return theta - hyper(config.lr) * g


def momentum(theta, g, state, config, hyper):
    state["b"] = hyper(config.momentum) * state["b"] + g
    return theta - hyper(config.lr) * state["b"]


def nesterov(theta, g, state, config, hyper):
    mu = hyper(config.momentum)
    state["b"] = mu * state["b"] + g
    return theta - hyper(config.lr) * (g + mu * state["b"])


def adam_eps_hat(theta, g, state, config, hyper):
    """alpha = lr*sqrt(1-b2^t)/(1-b1^t); p -= alpha*m/(sqrt(v)+eps)."""
    b1, b2, eps = hyper(config.beta1), hyper(config.beta2), hyper(config.eps)
    t = state["t"] = state["t"] + 1
    state["m"] = b1 * state["m"] + (1 - b1) * g
    state["v"] = b2 * state["v"] + (1 - b2) * g * g
    alpha = hyper(config.lr * np.sqrt(1 - config.beta2**t) / (1 - config.beta1**t))
    return theta - alpha * state["m"] / (np.sqrt(state["v"]) + eps)


def params(result):
    return np.append(result.weights, result.bias)


def test_history_is_the_sample_weighted_mean_of_each_batch_loss_before_its_step():
    config = TrainConfig(lr=0.05, epochs=3, batch_size=5, standardize=False)  # 24 = 4*5 + 4
    theta, history = hand_fit(SMALL, config, sgd)
    result = fit(config)
    np.testing.assert_allclose(result.history["loss"], history, rtol=1e-13)
    np.testing.assert_allclose(params(result), theta, rtol=1e-13)


def test_epsilon_hat_adam_follows_its_formula():
    # eps large against sqrt(v), so its placement matters at every step.
    config = TrainConfig(optimizer="adam", lr=0.1, beta1=0.8, beta2=0.99, eps=0.05, epochs=4)
    config = config.replace(batch_size=7, standardize=False)
    theta, history = hand_fit(SMALL, config, adam_eps_hat)
    result = fit(config, Conventions(adam_eps=ADAM_EPS_HAT))
    assert result.conventions == {
        "adam_eps": ADAM_EPS_HAT,
        "float32_hyperparameters": False,
        "clip_eps": 1e-6,
        "clip_summed": False,
        "parallel_sum_float32": False,
        "weight_decay": "coupled",
        "momentum_lr_inside": False,
        "nesterov_decay_reads_new_weight": False,
        "adamw_rate_times_correction": False,
    }
    np.testing.assert_allclose(params(result), theta, rtol=1e-12)
    np.testing.assert_allclose(result.history["loss"], history, rtol=1e-12)


@pytest.mark.parametrize("rule", [sgd, momentum, nesterov, adam_eps_hat], ids=lambda r: r.__name__)
def test_mxnet_conventions_fit_with_every_hyperparameter_a_c_float(rule):
    optimizer = {"adam_eps_hat": "adam"}.get(rule.__name__, rule.__name__)
    config = TrainConfig(optimizer=optimizer, lr=0.03, momentum=0.7, beta1=0.85, eps=0.3)
    config = config.replace(epochs=3, batch_size=10, standardize=False)  # 1/10: no C float
    theta, history = hand_fit(SMALL, config, rule, as_float32)
    mxnet = Conventions(adam_eps=ADAM_EPS_HAT, float32_hyperparameters=True)
    result = fit(config, mxnet)
    assert result.conventions == mxnet.to_dict()
    assert max_relative_difference(params(result), theta) < 1e-13
    np.testing.assert_allclose(result.history["loss"], history, rtol=1e-13)
    unrounded = fit(config, Conventions(adam_eps=ADAM_EPS_HAT))
    assert max_relative_difference(params(result), params(unrounded)) > 1e-10


def test_divergence_is_reported_without_numpy_warnings(diabetes):
    # Overflow and inf - inf inside an epoch are expected there: the epoch's loss reports them.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DivergenceError, match="training diverged at epoch"):
            # batch size 1: steps after the overflow compute inf - inf within the epoch
            config = TrainConfig(lr=1e6, standardize=False, epochs=3, batch_size=1)
            NumpyTrainer().fit(diabetes, config)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_exact_solver_runs_without_numpy_warnings(diabetes, dtype):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = NumpyTrainer().fit(diabetes, TrainConfig(solver="exact", dtype=dtype))
    assert result.history == {"loss": []} and result.timing["steps"] == 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_arrays_in_blocks_equal_the_whole_transform(monkeypatch, dtype):
    from dlport.common import feeds
    from dlport.common.data import load_dataset
    from dlport.common.standardize import Standardizer

    data = load_dataset("synthetic:n=100,d=3,noise=0.1,seed=1")
    scaler = Standardizer.fit(data.X, data.y)
    monkeypatch.setattr(feeds, "_BYTES_PER_BLOCK", 7 * 8 * 3)  # 15 blocks of 7 rows, the last 2
    Xs, ys = feeds._training_arrays(scaler, data, TrainConfig(dtype=dtype))
    want_X, want_y = scaler.transform(data.X, data.y)
    assert Xs.dtype == ys.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(Xs, want_X.astype(dtype))
    np.testing.assert_array_equal(ys, want_y.astype(dtype))


def test_training_arrays_refuse_a_late_block_that_overflows_float32(monkeypatch):
    from dlport.common import feeds
    from dlport.common.data import Dataset
    from dlport.common.standardize import Standardizer

    X = np.zeros((20, 1))
    X[17, 0] = 1e300  # in the third block of 7
    data = Dataset(X, np.arange(20.0), ("x",), "y", "big")
    monkeypatch.setattr(feeds, "_BYTES_PER_BLOCK", 7 * 8)  # blocks of 7 rows
    config = TrainConfig(dtype="float32", standardize=False)
    with pytest.raises(DlportError, match="a value of magnitude 1e[+]300 overflows float32"):
        feeds._training_arrays(Standardizer.identity(1), data, config)
