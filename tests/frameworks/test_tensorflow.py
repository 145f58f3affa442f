"""Checks of the TensorFlow/Keras port's own choices: dtype end to end, one trace per run, the
compiled epoch equal to a plain eager loop, a resumable optimizer state, a quiet terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from dlport.common.batching import epoch_order, iter_batches
from dlport.common.checkpoint import Checkpoint, Checkpointing, decode_state, encode_state
from dlport.common.config import OPTIMIZERS, TrainConfig
from dlport.common.errors import DlportError
from dlport.common.init import initial_params
from dlport.common.standardize import Standardizer
from dlport.frameworks.tensorflow.trainer import (
    TensorFlowRunner,
    TensorFlowTrainer,
    make_keras_parts,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def problem(diabetes):
    """Standardized diabetes data and the initial values, as TrainerBase.fit makes them."""
    X, y = Standardizer.fit(diabetes.X, diabetes.y).transform(diabetes.X, diabetes.y)
    w0, b0 = initial_params(X.shape[1], seed=0)
    return X, y, w0, b0


def _runner(problem, config, **kwargs):
    X, y, w0, b0 = problem
    dtype = config.dtype
    return TensorFlowRunner(
        X.astype(dtype), y.astype(dtype), w0.astype(dtype), b0, config, "cpu", **kwargs
    )


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_layer_loss_and_optimizer_state_are_in_the_run_dtype(problem, optimizer, dtype):
    config = TrainConfig(optimizer=optimizer, dtype=dtype)
    runner = _runner(problem, config)
    runner.run_epoch(epoch_order(len(problem[1]), 0, 0, 32))
    layer, loss, opt = runner.layer, runner.loss, runner.optimizer
    assert layer.compute_dtype == layer.variable_dtype == dtype
    assert [v.dtype for v in layer.trainable_variables] == [dtype, dtype]
    assert loss.dtype == dtype
    slots = [v for v in opt.variables if v is not opt.iterations]
    assert len(slots) >= 3  # the learning rate and one or two slots per parameter
    assert {v.dtype for v in slots} == {dtype}
    # The loss itself is computed in the run dtype: in float64 it matches NumPy to the last bits.
    X, y = problem[0].astype(dtype), problem[1].astype(dtype)
    got = loss(tf.constant(y[:, None]), layer(tf.constant(X)))
    assert got.dtype == tf.as_dtype(dtype)
    w, b = runner.params()
    want = np.mean((X.astype(np.float64) @ w + b - y) ** 2)
    assert abs(float(got) - want) / want < (1e-14 if dtype == "float64" else 1e-6)
    # Hyperparameters reach the update math unrounded in float64 (Keras casts Python floats
    # through float32), and Keras' global floatx is left as it was.
    hyper = opt.momentum if optimizer == "momentum" else opt.beta_1
    cast = float(keras.ops.cast(hyper, dtype))
    assert cast == (0.9 if dtype == "float64" else float(np.float32(0.9)))
    assert float(keras.ops.cast(opt.learning_rate, "float64")) == float(np.dtype(dtype).type(0.01))
    assert keras.config.floatx() == "float32"


@pytest.mark.parametrize("batch_size", [32, None], ids=["batch32", "full"])
def test_epochs_do_not_retrace(problem, batch_size):
    runner = _runner(problem, TrainConfig(optimizer="adam", batch_size=batch_size))
    n = len(problem[1])
    for epoch in range(4):  # 442 = 13 * 32 + 26: a full-batch call and a tail call per epoch
        runner.run_epoch(epoch_order(n, 0, epoch, min(batch_size or n, n)))
    traced = runner.train_all if batch_size is None else runner.train_batches
    assert traced.experimental_get_tracing_count() == 1


def _eager_loop(problem, config, epochs):
    """The plain Keras custom training loop, one eager step per batch, same Keras parts."""
    X, y, w0, b0 = problem
    X, y = X.astype(config.dtype), y.astype(config.dtype)
    layer, loss_fn, optimizer = make_keras_parts(w0.astype(config.dtype), b0, config)
    variables = layer.trainable_variables
    batch, history = config.batch_size_for(len(y)), []
    for epoch in range(epochs):
        total = 0.0
        for idx in iter_batches(epoch_order(len(y), config.seed, epoch, batch), batch):
            with tf.GradientTape() as tape:
                loss = loss_fn(tf.constant(y[idx, None]), layer(tf.constant(X[idx])))
            grads = tape.gradient(loss, variables)
            optimizer.apply_gradients(zip(grads, variables, strict=True))
            total += float(loss) * len(idx)
        history.append(total / len(y))
    kernel, bias = layer.get_weights()
    return np.append(kernel.reshape(-1), bias), np.array(history)


@pytest.mark.parametrize("jit_compile", [True, False], ids=["xla", "graph"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_compiled_epochs_match_an_eager_step_loop(problem, optimizer, dtype, jit_compile):
    epochs = 3
    config = TrainConfig(optimizer=optimizer, dtype=dtype, batch_size=32)
    want_params, want_history = _eager_loop(problem, config, epochs)
    runner = _runner(problem, config, jit_compile=jit_compile)
    n = len(problem[1])
    history = [runner.run_epoch(epoch_order(n, config.seed, e, 32)) for e in range(epochs)]
    w, b = runner.params()
    rtol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(np.append(w, b), want_params, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(history, want_history, rtol=rtol)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", ["nesterov", "adam"])
def test_optimizer_state_round_trip_resumes_bit_for_bit(problem, optimizer, dtype):
    config = TrainConfig(optimizer=optimizer, dtype=dtype)
    n = len(problem[1])
    orders = [epoch_order(n, config.seed, e, 32) for e in range(4)]
    straight = _runner(problem, config)
    want = [straight.run_epoch(order) for order in orders]
    first = _runner(problem, config)
    got = [first.run_epoch(order) for order in orders[:2]]
    # Through the checkpoint's JSON encoding, as a resumed run would read it.
    state = decode_state(json.loads(json.dumps(encode_state(first.optimizer_state()))))
    w, b = first.params()
    X, y, _, _ = problem
    second = TensorFlowRunner(X.astype(dtype), y.astype(dtype), w.astype(dtype), b, config, "cpu")
    second.load_optimizer_state(state)
    got += [second.run_epoch(order) for order in orders[2:]]
    assert got == want
    assert np.array_equal(np.append(*second.params()), np.append(*straight.params()))


def test_resume_refuses_an_optimizer_variable_keras_would_only_warn_about(diabetes, tmp_path):
    # Keras' load_own_variables warns about an unknown variable and loads nothing at all: the
    # resumed run would restart Adam's moments and step silently.
    config = TrainConfig(optimizer="adam", epochs=2, device="cpu")
    path = tmp_path / "one.json"
    trainer = TensorFlowTrainer()
    trainer.fit(diabetes, config.replace(epochs=1), callbacks=[Checkpointing(path=path)])
    payload = Checkpoint.read(path).payload
    payload["optimizer"]["6"] = payload["optimizer"]["5"]
    Checkpoint(payload).write(path)
    with pytest.raises(DlportError, match=r"does not fit tensorflow adam: optimizer\.6 is unexp"):
        trainer.fit(diabetes, config, resume=Checkpoint.read(path))


def test_cli_prints_nothing_of_tensorflow(tmp_path):
    # Without tox's settings: dlport's own defaults must keep TensorFlow quiet.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_CPP_", "TF_ENABLE_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    out = tmp_path / "result.json"
    command = [sys.executable, "-m", "dlport", "train", "--framework", "tensorflow"]
    command += ["--data", "diabetes", "--epochs", "2", "--optimizer", "adam", "--json", str(out)]
    proc = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    # With --json FILE dlport prints its summary to stdout and nothing to a piped stderr.
    assert proc.stderr == ""
    first, second = proc.stdout.splitlines()[:2]  # what trains on what, then the summary
    assert first.startswith("data diabetes: 442 rows;")
    assert second.startswith(f"tensorflow {tf.__version__} on ")
    assert json.loads(out.read_text())["versions"]["keras"] == keras.__version__


def test_tf32_is_off_unless_a_run_asks(diabetes):
    trainer = TensorFlowTrainer()
    trainer.fit(diabetes, TrainConfig(epochs=1, device="cpu", tf32=True))
    assert tf.config.experimental.tensor_float_32_execution_enabled()
    trainer.fit(diabetes, TrainConfig(epochs=1, device="cpu"))
    assert not tf.config.experimental.tensor_float_32_execution_enabled()


# The data-parallel runs every framework with an engine passes.
from data_parallel_suite import *  # noqa: E402, F403
