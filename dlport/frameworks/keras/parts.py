"""The backend-neutral half of the Keras 3 ports: ``keras.layers.Dense``,
``keras.losses.MeanSquaredError``, ``keras.optimizers`` (SGD / Adam), predict and the ``.keras``
file. Each port (tensorflow, keras-jax, keras-torch) selects its backend with
``dlport.frameworks.keras.use_backend`` before importing this module, and adds only how its
backend runs an epoch.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
from pathlib import Path
from typing import ClassVar

import keras
import numpy as np

from dlport.common.config import TrainConfig
from dlport.common.conventions import ADAM_EPS_HAT, Conventions
from dlport.common.errors import DlportError
from dlport.common.fitting import TrainerBase
from dlport.common.onnx_model import INSTALL_HINT, Exported, import_onnx


def _keep_float64() -> None:
    """Keras <= 3.15 promotes float64 to float32 on its jax and torch backends
    (``BIT64_TO_BIT32_DTYPE``), so ``ops.mean``, and with it ``MeanSquaredError``, computes a
    float64 loss through float32: the loss off by ~1e-8, and its gradient too for a batch whose
    size is not a power of two. keras-team/keras#23225 (merged, unreleased as of 3.15.1) keeps
    float64 there; this is the same change, in this process (each Keras port has its own)."""
    from keras.src.backend.common import dtypes

    dtypes.BIT64_TO_BIT32_DTYPE["float64"] = "float64"


_keep_float64()


def device_scope(device: str):
    """Keras' own placement scope, the same on every backend. "cpu", not "cpu:0": under
    "cpu:0" Keras' torch backend moves each new variable with ``Parameter.to("cpu:0")``, a copy,
    so the layer's weights would not be leaves and would get no gradient."""
    return keras.device(device)


@contextlib.contextmanager
def floatx(dtype: str):
    """Keras' global floatx, set only while Keras objects are built, then restored.

    The optimizer creates its learning-rate variable in floatx() (it has no dtype argument);
    a float32 learning rate would round 0.01 and break float64 parity.
    """
    previous = keras.config.floatx()
    keras.config.set_floatx(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(previous)


def make_dense(w0: np.ndarray, b0: float, dtype: str) -> keras.layers.Dense:
    """A built ``Dense(1)`` computing and storing in ``dtype``, loaded with the given values."""
    # Zeros initializers: the values come from dlport.common.init, no random draw needed.
    layer = keras.layers.Dense(1, dtype=dtype, kernel_initializer="zeros", bias_initializer="zeros")
    layer.build((None, len(w0)))
    layer.set_weights([np.asarray(w0, dtype=dtype).reshape(-1, 1), np.array([b0], dtype=dtype)])
    return layer


def make_optimizer(config: TrainConfig) -> keras.optimizers.Optimizer:
    """Build it inside ``floatx(config.dtype)``: its learning rate is a floatx() variable."""
    h = _hyperparameter_caster(config.dtype)
    # global_clipnorm: the norm over every variable at once (clipnorm would clip each alone)
    clip = {} if config.clip_norm is None else {"global_clipnorm": h(config.clip_norm)}
    if config.optimizer == "adam":
        return keras.optimizers.Adam(
            learning_rate=h(config.lr),
            beta_1=h(config.beta1),
            beta_2=h(config.beta2),
            epsilon=h(config.eps),
            **clip,
        )
    momentum = 0.0 if config.optimizer == "sgd" else h(config.momentum)
    return keras.optimizers.SGD(
        learning_rate=h(config.lr),
        momentum=momentum,
        nesterov=config.optimizer == "nesterov",
        **clip,
    )


def _hyperparameter_caster(dtype: str):
    """Keras' TF backend casts a Python float hyperparameter through float32 (``ops.cast(0.9,
    "float64")`` is 0.8999999761581421); a NumPy float64, which is a Python float too, keeps
    all its bits. float32 runs keep plain floats, so the optimizer math stays in float32."""
    return np.float64 if dtype == "float64" else float


def make_keras_parts(w0: np.ndarray, b0: float, config: TrainConfig, device: str = "cpu"):
    """(layer, loss, optimizer), all in ``config.dtype``, variables on ``device``."""
    with device_scope(device), floatx(config.dtype):
        layer = make_dense(w0, b0, config.dtype)
        loss = keras.losses.MeanSquaredError(dtype=config.dtype)
        optimizer = make_optimizer(config)
        optimizer.build(layer.trainable_variables)  # slots now, not inside a traced step
    return layer, loss, optimizer


class KerasTrainer(TrainerBase):
    """What every Keras port shares; a backend adds devices, its runner and its lstsq."""

    conventions = Conventions(adam_eps=ADAM_EPS_HAT, clip_eps=0.0)
    native_suffix = ".keras"
    # mlflow.keras as a SavedModel (``model.export``), whose serving endpoint keeps the input
    # dtype; otherwise a .keras file, whose pyfunc calls ``model.predict``: that casts float64
    # rows to floatx (float32), 1.6e-7 relative on diabetes. SavedModel export needs TensorFlow.
    mlflow_exported: ClassVar[bool] = False

    def version(self) -> str:
        return keras.__version__

    def _extra_versions(self) -> dict[str, str]:
        return {"keras": keras.__version__}

    def _parity_settings(self) -> None:
        """The backend's determinism and full-precision switches (docs/design.md)."""

    def _gram(self, X, y, device):
        self._parity_settings()
        ops = keras.ops
        with device_scope(device):
            A = ops.cast(ops.convert_to_tensor(X), "float64")
            b = ops.cast(ops.convert_to_tensor(y), "float64")
            parts = ops.matmul(ops.transpose(A), A), ops.sum(A, axis=0), ops.matmul(b, A)
            return (*(ops.convert_to_numpy(p) for p in parts), float(ops.sum(b)))

    def _solve_gram(self, A, b, device):
        with device_scope(device):
            return keras.ops.convert_to_numpy(keras.ops.solve(A, b))

    def _predict(self, X, w, b, device):
        self._parity_settings()
        with device_scope(device):
            layer = make_dense(w, b, X.dtype.name)
            return keras.ops.convert_to_numpy(layer(keras.ops.convert_to_tensor(X)))

    def export_native(self, weights, bias, path, dtype="float64"):
        # A whole Keras model file: keras.models.load_model(path) predicts in original units,
        # on whichever backend loads it.
        model = make_model(weights, bias, dtype)
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)  # as the other exports do
            with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
                staged = Path(tmp) / "model.keras"  # Keras insists on the .keras suffix
                model.save(staged)
                os.replace(staged, path)
        except OSError as exc:  # name the user's path, not the staging folder
            raise OSError(exc.errno, exc.strerror, str(path)) from None

    def onnx_model(self, weights, bias, dtype):
        # Keras' own exporter: tf2onnx on TensorFlow, torch.onnx on torch
        onnx = import_onnx()
        model = make_model(weights, bias, dtype)
        model(np.zeros((1, len(weights)), dtype=dtype))  # Keras exports only a called model
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.onnx")
            try:
                with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # the exporters' own deprecations
                    model.export(path, format="onnx", verbose=False)
            except ImportError as exc:  # tf2onnx, onnxscript
                raise DlportError(f"Keras' ONNX export needs {exc.name}: {INSTALL_HINT}") from None
            exported = onnx.load(path)
        return Exported(exported, f"keras Model.export(format='onnx'), keras {keras.__version__}")

    def log_mlflow_model(self, weights, bias, dtype, feature_names):
        import mlflow.keras

        from dlport.tracking import model_arguments

        model = make_model(weights, bias, dtype)
        mlflow.keras.log_model(
            model,
            save_exported_model=self.mlflow_exported,
            **model_arguments(self.name, weights, dtype, feature_names),
        )

    def import_native(self, path):
        try:
            model = keras.models.load_model(path)
            kernel, bias = model.layers[-1].get_weights()
        except Exception as exc:  # Keras raises many types for a bad file
            raise DlportError(
                f"{path} is not a Keras model with a Dense(1) layer ({exc})"
            ) from None
        return kernel.astype(np.float64).reshape(-1), float(bias[0])


def make_model(weights, bias, dtype: str) -> keras.Sequential:
    """The exported model: the input in ``dtype`` (a float64 model takes float64 rows)."""
    return keras.Sequential(
        [keras.Input((len(weights),), dtype=dtype), make_dense(weights, bias, dtype)]
    )


class KerasVariablesState:
    """The params from the ``layer``'s variables, and the optimizer's state in Keras' own
    store ({"0": step count, "1": learning rate, slots...}), for a runner whose ``layer`` and
    ``optimizer`` variables hold the live values."""

    layer: keras.layers.Dense
    optimizer: keras.optimizers.Optimizer

    def params(self) -> tuple[np.ndarray, float]:
        kernel, bias = self.layer.get_weights()
        return kernel.reshape(-1).astype(np.float64), float(bias[0])

    def optimizer_state(self) -> dict:
        store: dict = {}
        self.optimizer.save_own_variables(store)
        return store

    def load_optimizer_state(self, state: dict) -> None:
        self.optimizer.load_own_variables(state)
