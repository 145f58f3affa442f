"""Checks of the JAX port's own choices: float64 on, optax's rules equal to the reference's
canonical forms step for step, one compilation per run, a flax-loadable export."""

from __future__ import annotations

import flax.serialization
import jax
import numpy as np
import optax
import pytest

from dlport.common.batching import epoch_order
from dlport.common.config import TrainConfig
from dlport.common.conventions import ADAM_EPS_HAT, CANONICAL, Conventions
from dlport.frameworks.jax.trainer import JaxRunner, JaxTrainer, make_optimizer
from dlport.frameworks.numpy.trainer import ReferenceRunner


def test_the_port_turns_on_float64():
    assert jax.config.jax_enable_x64


def _optax_steps(config: TrainConfig, theta0: np.ndarray, grads: np.ndarray) -> np.ndarray:
    optimizer = make_optimizer(config)
    params = jax.numpy.asarray(theta0)
    state = optimizer.init(params)
    for g in grads:
        updates, state = optimizer.update(jax.numpy.asarray(g), state, params)
        params = optax.apply_updates(params, updates)
    return np.asarray(params)


def _reference_steps(config, conventions, theta0, grads) -> np.ndarray:
    runner = ReferenceRunner(np.zeros((1, len(theta0) - 1)), np.zeros(1), theta0[:-1],
                             theta0[-1], config, conventions)  # fmt: skip
    for g in grads:
        runner._update(g, config.lr)
    return runner.theta


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adam"])
def test_optax_rules_are_the_reference_canonical_forms(optimizer):
    """optax's trace (b = g + mu*b; nesterov g + mu*b) and scale_by_adam (eps added to
    sqrt(v_hat)) are torch's forms: no convention of their own. Gradients of 1e-6 make Adam's
    eps placement visible: the epsilon-hat form lands 1e-9 away, optax within 1e-15."""
    config = TrainConfig(optimizer=optimizer, lr=0.01)
    rng = np.random.default_rng(0)
    theta0, grads = rng.normal(size=4), rng.normal(size=(30, 4)) * 1e-6
    got = _optax_steps(config, theta0, grads)
    want = _reference_steps(config, CANONICAL, theta0, grads)
    assert np.max(np.abs(got - want) / np.maximum(1, np.abs(want))) < 1e-15
    if optimizer == "adam":
        hat = _reference_steps(config, Conventions(adam_eps=ADAM_EPS_HAT), theta0, grads)
        assert np.max(np.abs(got - hat)) > 1e-9


@pytest.mark.parametrize("batch_size", [32, 442], ids=["batch32+tail", "full"])
def test_the_epoch_compiles_once_per_run(diabetes, batch_size):
    X, y = diabetes.X / diabetes.X.std(0), diabetes.y / diabetes.y.std()
    config = TrainConfig(optimizer="adam", batch_size=batch_size)
    runner = JaxRunner(X, y, np.zeros(X.shape[1]), 0.0, config, "cpu")
    for epoch in range(4):  # 442 = 13 * 32 + 26: a scan and a tail step in one call
        runner.run_epoch(epoch_order(len(y), 0, epoch, batch_size))
    assert runner.epoch._cache_size() == 1


def test_export_is_flax_msgpack_of_a_dense_layers_params(tmp_path):
    path = tmp_path / "model.msgpack"
    JaxTrainer().export_native(np.array([1.0, -2.0]), 0.5, str(path))
    target = {"kernel": np.zeros((2, 1)), "bias": np.zeros(1)}  # flax Dense(1)'s params
    params = flax.serialization.from_bytes(target, path.read_bytes())
    assert params["kernel"].dtype == np.float64
    assert params["kernel"].ravel().tolist() == [1.0, -2.0] and params["bias"].tolist() == [0.5]


def test_float32_matmuls_stay_float32_unless_a_run_asks_for_tf32(diabetes):
    """XLA's default may use TF32 on NVIDIA GPUs: the package sets float32, a --tf32 run widens
    it for its own epochs only."""
    assert jax.config.jax_default_matmul_precision == "float32"
    X, y = diabetes.X.astype(np.float32), diabetes.y.astype(np.float32)
    for tf32, precision in ((False, "float32"), (True, "tensorfloat32")):
        config = TrainConfig(dtype="float32", tf32=tf32)
        runner = JaxRunner(X, y, np.zeros(X.shape[1]), 0.0, config, "cpu")
        assert runner.precision == precision
        runner.run_epoch(epoch_order(len(y), 0, 0, 32))
    assert jax.config.jax_default_matmul_precision == "float32"


# The data-parallel runs every framework with an engine passes.
from data_parallel_suite import *  # noqa: E402, F403
