"""TensorFlow trainer: ``keras.layers.Dense``, ``keras.losses.MeanSquaredError``,
``keras.optimizers`` (SGD / Adam) and ``tf.linalg.lstsq``, on Keras 3 with the TF backend.

Data live on the device as constants; each epoch runs as one compiled ``tf.function`` call
over its full batches (plus one call for the partial tail batch), and the epoch loss is summed
there, so the host waits once per epoch, not once per step.
"""

from __future__ import annotations

import os

# Before TensorFlow loads: keep its C++ logging (cuInit, CPU-feature and plugin notices) off
# the user's terminal, and keep oneDNN's reordered float math off for CPU parity.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import contextlib  # noqa: E402
import logging  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from dlport.common.batching import split_batches  # noqa: E402
from dlport.common.config import TrainConfig  # noqa: E402
from dlport.common.conventions import ADAM_EPS_HAT, Conventions  # noqa: E402
from dlport.common.errors import DlportError  # noqa: E402
from dlport.common.fitting import TrainerBase  # noqa: E402

# XLA compiles the whole epoch loop into one native program. Measured on 2 CPU cores (n=100k,
# d=16, batch 256): the epoch call ran 3.5-4x faster than the graph executor runs it, and
# float64 parity stays at ~1e-15. The cost: ~0.5 s of compilation in each run's first epoch.
JIT_COMPILE = True

_TF_DEVICES = {"cpu": "/CPU:0", "gpu": "/GPU:0"}


def _quiet() -> None:
    tf.get_logger().setLevel(logging.ERROR)
    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:  # absl ships with tensorflow; be safe anyway
        pass


_quiet()


def parity_settings() -> None:
    """Deterministic ops, and full-precision float32 matmuls (no TF32 on GPU), per docs/design.md.

    Process-wide and one-way by TF's design (there is no public "disable"), so set when dlport
    first computes, not on import; once on, unseeded random ops raise until a seed is set.
    """
    tf.config.experimental.enable_op_determinism()
    tf.config.experimental.enable_tensor_float_32_execution(False)


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
    if config.optimizer == "adam":
        return keras.optimizers.Adam(
            learning_rate=h(config.lr),
            beta_1=h(config.beta1),
            beta_2=h(config.beta2),
            epsilon=h(config.eps),
        )
    momentum = 0.0 if config.optimizer == "sgd" else h(config.momentum)
    return keras.optimizers.SGD(
        learning_rate=h(config.lr), momentum=momentum, nesterov=config.optimizer == "nesterov"
    )


def _hyperparameter_caster(dtype: str):
    """Keras' TF backend casts a Python float hyperparameter through float32 (``ops.cast(0.9,
    "float64")`` is 0.8999999761581421); a NumPy float64, which is a Python float too, keeps
    all its bits. float32 runs keep plain floats, so the optimizer math stays in float32."""
    return np.float64 if dtype == "float64" else float


def make_keras_parts(w0: np.ndarray, b0: float, config: TrainConfig, device: str = "cpu"):
    """(layer, loss, optimizer), all in ``config.dtype``, variables on ``device``."""
    with tf.device(_TF_DEVICES[device]), floatx(config.dtype):
        layer = make_dense(w0, b0, config.dtype)
        loss = keras.losses.MeanSquaredError(dtype=config.dtype)
        optimizer = make_optimizer(config)
        optimizer.build(layer.trainable_variables)  # slots now, not inside the traced loop
    return layer, loss, optimizer


class TensorFlowTrainer(TrainerBase):
    name = "tensorflow"
    conventions = Conventions(adam_eps=ADAM_EPS_HAT)
    native_suffix = ".keras"

    def version(self) -> str:
        return tf.__version__

    def devices(self) -> list[str]:
        return ["cpu", "gpu"] if tf.config.list_physical_devices("GPU") else ["cpu"]

    def _extra_versions(self) -> dict[str, str]:
        return {"keras": keras.__version__}

    def _runner(self, X, y, w0, b0, config, device):
        parity_settings()
        return TensorFlowRunner(X, y, w0, b0, config, device)

    def _solve_exact(self, X, y, device):
        parity_settings()
        with tf.device(_TF_DEVICES[device]):
            # fast=False: complete orthogonal decomposition, not the normal equations; it gives
            # the minimum-norm solution, as NumPy's lstsq, even for rank-deficient data. Its
            # kernel is CPU-only; under a GPU scope TF's soft placement runs it on the CPU.
            coef = tf.linalg.lstsq(tf.constant(X), tf.constant(y.reshape(-1, 1)), fast=False)
        return coef.numpy().reshape(-1)

    def _predict(self, X, w, b, device):
        parity_settings()
        with tf.device(_TF_DEVICES[device]):
            layer = make_dense(w, b, X.dtype.name)
            return layer(tf.constant(X)).numpy().reshape(-1)

    def export_native(self, weights, bias, path):
        # A whole Keras model file: keras.models.load_model(path) predicts in original units.
        model = keras.Sequential(
            [keras.Input((len(weights),), dtype="float64"), make_dense(weights, bias, "float64")]
        )
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)  # as the other exports do
            with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
                staged = Path(tmp) / "model.keras"  # Keras insists on the .keras suffix
                model.save(staged)
                os.replace(staged, path)
        except OSError as exc:  # name the user's path, not the staging folder
            raise OSError(exc.errno, exc.strerror, str(path)) from None

    def import_native(self, path):
        try:
            model = keras.models.load_model(path)
            kernel, bias = model.layers[-1].get_weights()
        except Exception as exc:  # Keras raises many types for a bad file
            raise DlportError(
                f"{path} is not a Keras model with a Dense(1) layer ({exc})"
            ) from None
        return kernel.astype(np.float64).reshape(-1), float(bias[0])


class TensorFlowRunner:
    """One epoch = one compiled call over the (steps, B) full batches, one more for the tail."""

    def __init__(self, X, y, w0, b0, config: TrainConfig, device: str, *, jit_compile=None):
        self.device = _TF_DEVICES[device]
        self.batch_size = config.batch_size_for(len(y))
        self.layer, self.loss, self.optimizer = make_keras_parts(w0, b0, config, device)
        self.dtype = tf.as_dtype(config.dtype)
        with tf.device(self.device):
            self.X = tf.constant(X)
            self.y = tf.constant(y.reshape(-1, 1))  # the layer's (n, 1) output shape
        # One signature for every (steps, B): traced once; XLA compiles once per shape (two).
        jit = JIT_COMPILE if jit_compile is None else jit_compile
        self.train_batches = tf.function(
            self._train_batches,
            input_signature=[tf.TensorSpec([None, None], tf.int64)],
            jit_compile=jit,
        )
        # Full batch: the natural order (dlport.common.batching), so no gather of all the data.
        self.train_all = tf.function(self._train_all, jit_compile=jit)

    def _step(self, xb, yb):
        """One optimizer step on a batch; returns its loss, from before the update."""
        variables = self.layer.trainable_variables
        with tf.GradientTape() as tape:
            loss = self.loss(yb, self.layer(xb))
        grads = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss

    def _train_batches(self, batches):
        """Train on each row of ``batches`` (sample indices) in turn; return sum(loss * B)."""
        total = tf.zeros([], self.dtype)
        for i in tf.range(tf.shape(batches)[0]):
            idx = batches[i]
            total += self._step(tf.gather(self.X, idx), tf.gather(self.y, idx))
        return total * tf.cast(tf.shape(batches)[1], self.dtype)

    def _train_all(self):
        return self._step(self.X, self.y) * tf.cast(tf.shape(self.X)[0], self.dtype)

    def run_epoch(self, order: np.ndarray) -> float:
        if self.batch_size >= len(order):
            with tf.device(self.device):
                return float(self.train_all()) / len(order)
        full, tail = split_batches(np.asarray(order, dtype=np.int64), self.batch_size)
        with tf.device(self.device):
            total = self.train_batches(full)  # batch_size <= n: at least one full batch
            if len(tail):
                total += self.train_batches(tail.reshape(1, -1))
            return float(total) / len(order)  # the epoch's one host sync

    def params(self):
        kernel, bias = self.layer.get_weights()
        return kernel.reshape(-1).astype(np.float64), float(bias[0])

    def optimizer_state(self) -> dict:
        """Keras' own store of the optimizer: {"0": step count, "1": learning rate, slots...}."""
        store: dict = {}
        self.optimizer.save_own_variables(store)
        return store

    def load_optimizer_state(self, state: dict) -> None:
        self.optimizer.load_own_variables(state)
