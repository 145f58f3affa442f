"""Checks of the Keras-on-torch port's own choices: float64 end to end (Keras' float32
promotion undone), and Keras' torch variables as leaves that autograd fills."""

from __future__ import annotations

import numpy as np

from dlport.common.config import TrainConfig
from dlport.frameworks.keras_torch.trainer import keras, make_keras_parts  # Keras on torch


def test_mean_squared_error_stays_in_float64():
    """Keras 3.15 computes ops.mean of float64 through float32 on torch; the port undoes it."""
    rng = np.random.default_rng(0)
    y, p = rng.normal(size=(26, 1)), rng.normal(size=(26, 1))
    got = keras.losses.MeanSquaredError(dtype="float64")(y, p)
    assert str(got.dtype) == "torch.float64"
    want = np.mean((p - y) ** 2)
    assert abs(float(got) - want) / want < 1e-14  # through float32: ~1e-8


def test_the_layers_variables_are_leaves_autograd_fills():
    layer, loss, _ = make_keras_parts(np.ones(3), 0.0, TrainConfig(), "cpu")
    loss(np.ones((4, 1)), layer(np.ones((4, 3)))).backward()
    assert all(v.value.is_leaf and v.value.grad is not None for v in layer.trainable_variables)
