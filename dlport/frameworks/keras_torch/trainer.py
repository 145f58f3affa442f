"""Keras 3 on its torch backend: the shared Keras parts (``dlport.frameworks.keras.parts``),
trained in eager steps the way Keras' own torch trainer takes them (``loss.backward()``, then
``optimizer.apply`` under ``torch.no_grad``), the data resident on the device, one gather and
one host sync per epoch; ``keras.ops.lstsq`` for the exact solver.
"""

from __future__ import annotations

import os

# cuBLAS needs this before CUDA starts for deterministic algorithms (no effect on CPU).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import torch  # noqa: E402  (first: without torch, fail before Keras loads on it)

from dlport.frameworks.keras import use_backend  # noqa: E402

use_backend("torch", "keras-torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from dlport.common.config import TrainConfig  # noqa: E402
from dlport.common.solve import rank_cutoff  # noqa: E402
from dlport.frameworks.keras.parts import (  # noqa: E402
    KerasTrainer,
    KerasVariablesState,
    device_scope,
    make_keras_parts,
)
from dlport.frameworks.torch.trainer import set_precision, step_threads  # noqa: E402


class KerasTorchTrainer(KerasTrainer):
    name = "keras-torch"

    def devices(self) -> list[str]:
        return ["cpu", "gpu"] if torch.cuda.is_available() else ["cpu"]

    def _extra_versions(self) -> dict[str, str]:
        return super()._extra_versions() | {"torch": torch.__version__}

    def _parity_settings(self) -> None:
        set_precision(torch.cuda.is_available())  # Keras' torch ops run on the GPU if there is one

    def _runner(self, X, y, w0, b0, config, device, schedule):
        set_precision(device == "gpu", config.tf32)
        return KerasTorchRunner(X, y, w0, b0, config, device, schedule)

    def _solve_exact(self, X, y, device):
        # Keras' torch lstsq: gelsd (SVD) on the CPU when given rcond, as numpy's.
        with device_scope(device):
            coef = keras.ops.lstsq(X, y, rcond=rank_cutoff(X.dtype, *X.shape))
        return keras.ops.convert_to_numpy(coef)


class KerasTorchRunner(KerasVariablesState):
    def __init__(self, X, y, w0, b0, config: TrainConfig, device: str, schedule=None):
        self.layer, self.loss, self.optimizer = make_keras_parts(w0, b0, config, device, schedule)
        self.variables = self.layer.trainable_variables
        self.device = device
        self.set_data(X, y)
        with device_scope(device):
            self.total = keras.ops.zeros((), dtype=config.dtype)
        self.batch_size = config.batch_size_for(len(y))

    def set_data(self, X, y) -> None:
        with device_scope(self.device):
            self.X = keras.ops.convert_to_tensor(X)
            self.y = keras.ops.convert_to_tensor(y.reshape(-1, 1))  # the layer's output shape

    def run_epoch(self, order: np.ndarray) -> float:
        if self.batch_size >= len(order):  # full batch: the natural order, nothing to gather
            X, y = self.X, self.y
        else:  # one gather per epoch; batches are views
            index = torch.from_numpy(order).to(self.X.device)
            X, y = self.X[index], self.y[index]
        self.total.zero_()
        with step_threads(self.batch_size, X.shape[1]):  # as the torch port
            for xb, yb in zip(X.split(self.batch_size), y.split(self.batch_size), strict=True):
                self.total.add_(self.step(xb, yb).detach(), alpha=len(xb))
        return self.total.item() / len(order)

    def step(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """Keras' torch train step: forward, ``backward()``, ``optimizer.apply``."""
        self.layer.zero_grad()
        loss = self.loss(yb, self.layer(xb))
        loss.backward()
        with torch.no_grad():
            self.optimizer.apply([v.value.grad for v in self.variables], self.variables)
        return loss
