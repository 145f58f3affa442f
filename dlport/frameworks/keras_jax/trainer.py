"""Keras 3 on its JAX backend: the shared Keras parts (``dlport.frameworks.keras.parts``), trained
the way Keras' own JAX trainer does it, statelessly: ``layer.stateless_call`` for the loss,
``jax.value_and_grad``, ``optimizer.stateless_apply``, the whole epoch in one jitted
``lax.scan`` (``dlport.frameworks.jax.epoch``); ``keras.ops.lstsq`` for the exact solver.
"""

from __future__ import annotations

from dlport.frameworks.jax.epoch import ScanEpochs, jax_devices  # JAX's float64 on
from dlport.frameworks.keras import use_backend

use_backend("jax", "keras-jax")

import jax  # noqa: E402
import keras  # noqa: E402

from dlport.common.config import TrainConfig  # noqa: E402
from dlport.common.fitting import TrainerBase  # noqa: E402
from dlport.common.solve import rank_cutoff  # noqa: E402
from dlport.frameworks.keras.parts import (  # noqa: E402
    KerasTrainer,
    KerasVariablesState,
    device_scope,
    make_keras_parts,
)


def make_step(layer, loss, optimizer):
    """Keras' stateless train step: (trainable values, optimizer values), batch -> new ones."""

    def compute_loss(trainable, xb, yb):
        prediction, _ = layer.stateless_call(trainable, [], xb)
        return loss(yb, prediction)

    def step(state, xb, yb):
        trainable, optimizer_values = state
        value, grads = jax.value_and_grad(compute_loss)(trainable, xb, yb)
        trainable, optimizer_values = optimizer.stateless_apply(optimizer_values, grads, trainable)
        return (trainable, optimizer_values), value

    return step


class KerasJaxTrainer(KerasTrainer):
    name = "keras-jax"
    # Measured with Keras 3.15 and jax2onnx 0.17: a float64 model came out with float32 inputs.
    onnx_fallback = (
        "Keras exports from JAX through jax2onnx, which pulls orbax, equinox and "
        "huggingface-hub and turns a float64 model's inputs into float32"
    )
    onnx_model = TrainerBase.onnx_model

    def devices(self) -> list[str]:
        return jax_devices()

    def _extra_versions(self) -> dict[str, str]:
        return super()._extra_versions() | {"jax": jax.__version__}

    def _runner(self, X, y, w0, b0, config, device, schedule):
        return KerasJaxRunner(X, y, w0, b0, config, device, schedule)

    def _solve_exact(self, X, y, device):
        with device_scope(device):
            coef = keras.ops.lstsq(X, y, rcond=rank_cutoff(X.dtype, *X.shape))
        return keras.ops.convert_to_numpy(coef)


class KerasJaxRunner(KerasVariablesState, ScanEpochs):
    def __init__(self, X, y, w0, b0, config: TrainConfig, device: str, schedule=None):
        self.layer, loss, self.optimizer = make_keras_parts(w0, b0, config, device, schedule)
        state = (
            [v.value for v in self.layer.trainable_variables],
            [v.value for v in self.optimizer.variables],
        )
        step = make_step(self.layer, loss, self.optimizer)
        y = y.reshape(-1, 1)  # the layer's (n, 1) output shape
        batch = config.batch_size_for(len(y))
        super().__init__(step, state, X, y, batch, device, config.tf32)

    def _sync(self) -> None:
        """Write the jitted state back into the Keras variables (Keras' stateless contract)."""
        trainable, optimizer_values = self.state
        for variable, value in zip(self.layer.trainable_variables, trainable, strict=True):
            variable.assign(value)
        for variable, value in zip(self.optimizer.variables, optimizer_values, strict=True):
            variable.assign(value)

    def params(self):
        self._sync()
        return super().params()

    def learning_rate(self) -> float:
        self._sync()  # the step count the schedule reads
        return super().learning_rate()

    def optimizer_state(self) -> dict:
        self._sync()
        return super().optimizer_state()

    def load_optimizer_state(self, state: dict) -> None:
        super().load_optimizer_state(state)
        values = [v.value for v in self.optimizer.variables]
        self.state = jax.device_put((self.state[0], values), self.device)
