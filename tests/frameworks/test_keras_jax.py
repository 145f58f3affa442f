"""Checks of the Keras-on-JAX port's own choices: float64 end to end (Keras' float32 promotion
undone), one compilation per run, the Keras variables holding the trained values."""

from __future__ import annotations

import numpy as np
import pytest

from dlport.common.batching import epoch_order
from dlport.common.config import TrainConfig
from dlport.frameworks.keras_jax.trainer import KerasJaxRunner, keras  # Keras on jax


def test_mean_squared_error_stays_in_float64():
    """Keras 3.15 computes ops.mean of float64 through float32 on jax; the port undoes it."""
    rng = np.random.default_rng(0)
    y, p = rng.normal(size=(26, 1)), rng.normal(size=(26, 1))
    got = keras.losses.MeanSquaredError(dtype="float64")(y, p)
    assert got.dtype == "float64"
    want = np.mean((p - y) ** 2)
    assert abs(float(got) - want) / want < 1e-14  # through float32: ~1e-8


@pytest.mark.parametrize("batch_size", [32, 442], ids=["batch32+tail", "full"])
def test_the_epoch_compiles_once_and_the_layer_gets_the_result(diabetes, batch_size):
    X, y = diabetes.X / diabetes.X.std(0), diabetes.y / diabetes.y.std()
    runner = KerasJaxRunner(X, y, np.zeros(10), 0.0, TrainConfig(batch_size=batch_size), "cpu")
    for epoch in range(3):
        runner.run_epoch(epoch_order(len(y), 0, epoch, batch_size))
    assert runner.epoch._cache_size() == 1
    w, b = runner.params()
    kernel, bias = runner.layer.get_weights()
    assert kernel.ravel().tolist() == w.tolist() and bias[0] == b != 0.0


def test_keras_on_another_backend_is_refused_in_this_process():
    from dlport.common.errors import DlportError
    from dlport.frameworks.keras import use_backend

    with pytest.raises(DlportError, match="already loaded Keras on jax .* `tox -e keras-torch`"):
        use_backend("torch", "keras-torch")
