"""The backend-neutral half of the Keras 3 ports: ``keras.layers.Dense``, ``keras.losses``
(MeanSquaredError / MeanAbsoluteError / Huber), ``keras.optimizers`` (SGD / Adam / AdamW, with
``keras.optimizers.schedules``), predict and the ``.keras`` file. Each port (tensorflow,
keras-jax, keras-torch) selects its backend with ``dlport.frameworks.keras.use_backend`` before
importing this module, and adds only how its backend runs an epoch.
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
from dlport.common.conventions import ADAM_EPS_HAT, DECOUPLED, Conventions
from dlport.common.errors import DlportError
from dlport.common.fitting import TrainerBase
from dlport.common.losses import parse_loss
from dlport.common.onnx_model import INSTALL_HINT, Exported, import_onnx
from dlport.common.schedules import Schedule


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


def make_dense(w0: np.ndarray, b0: float, dtype: str, use_bias: bool = True) -> keras.layers.Dense:
    """A built ``Dense(1)`` computing and storing in ``dtype``, loaded with the given values;
    without ``use_bias`` it has no bias variable at all (a fit through the origin)."""
    # Zeros initializers: the values come from dlport.common.init, no random draw needed.
    layer = keras.layers.Dense(
        1, use_bias=use_bias, dtype=dtype, kernel_initializer="zeros", bias_initializer="zeros"
    )
    layer.build((None, len(w0)))
    bias = [np.array([b0], dtype=dtype)] if use_bias else []
    layer.set_weights([np.asarray(w0, dtype=dtype).reshape(-1, 1), *bias])
    return layer


def make_optimizer(
    config: TrainConfig, schedule: Schedule | None = None
) -> keras.optimizers.Optimizer:
    """Build it inside ``floatx(config.dtype)``: its learning rate is a floatx() variable."""
    h = _hyperparameter_caster(config.dtype)
    options = {}
    if config.clip_norm is not None:  # the norm over every variable at once (not clipnorm's)
        options["global_clipnorm"] = h(config.clip_norm)
    if config.weight_decay or config.optimizer == "adamw":  # decoupled: w -= w * wd * lr
        options["weight_decay"] = h(config.weight_decay)
    if schedule is None or schedule.constant:
        options["learning_rate"] = h(config.lr)
    else:  # Keras evaluates it at optimizer.iterations, before each update
        options["learning_rate"] = make_schedule(schedule, config.dtype)
    if config.optimizer in ("adam", "adamw"):
        adam = keras.optimizers.AdamW if config.optimizer == "adamw" else keras.optimizers.Adam
        betas = {"beta_1": h(config.beta1), "beta_2": h(config.beta2)}
        return adam(epsilon=h(config.eps), **betas, **options)
    momentum = 0.0 if config.optimizer == "sgd" else h(config.momentum)
    return keras.optimizers.SGD(
        momentum=momentum, nesterov=config.optimizer == "nesterov", **options
    )


def make_schedule(schedule: Schedule, dtype: str):
    """``schedule`` from Keras' own schedules, computing in ``dtype``: each computes in its
    initial rate's dtype, which a 0-d array fixes on every backend (Keras' torch backend
    takes a NumPy float64 scalar as floatx())."""
    schedules, spec, warmup = keras.optimizers.schedules, schedule.spec, schedule.warmup_steps

    def h(value):
        return np.asarray(value, dtype=dtype)

    lr = h(schedule.lr)
    if spec.kind == "cosine":  # its own warmup: lr/(W+1) + (lr - lr/(W+1)) * t/W
        rise = {"warmup_target": lr, "warmup_steps": warmup} if warmup else {}
        first = h(schedule.lr / (warmup + 1)) if warmup else lr
        return schedules.CosineDecay(first, schedule.decay_steps, alpha=0.0, **rise)
    after = None  # constant after the warmup
    if spec.kind == "step":
        after = schedules.ExponentialDecay(lr, schedule.step_every, h(spec.gamma), staircase=True)
    elif spec.kind == "exponential":
        after = schedules.ExponentialDecay(lr, schedule.steps_per_epoch, h(spec.gamma))
    return LinearWarmup(lr, warmup, after) if warmup else after


class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """lr * (t + 1) / (W + 1) for the first W steps, then ``after`` (a Keras schedule; None:
    lr) at t - W: only Keras' CosineDecay has a warmup of its own."""

    def __init__(self, learning_rate, warmup_steps: int, after=None):
        super().__init__()
        self.learning_rate, self.warmup_steps, self.after = learning_rate, warmup_steps, after

    def __call__(self, step):
        ops = keras.ops
        lr = ops.convert_to_tensor(self.learning_rate)
        t = ops.cast(step, lr.dtype)
        warmup = ops.cast(self.warmup_steps, lr.dtype)
        after = lr if self.after is None else self.after(step - self.warmup_steps)
        return ops.where(t < warmup, lr * (t + 1) / (warmup + 1), after)


def make_loss(config: TrainConfig, reduction: str = "sum_over_batch_size") -> keras.losses.Loss:
    """Keras' loss class for ``config.loss``, computing in ``config.dtype``."""
    spec, kwargs = parse_loss(config.loss), {"reduction": reduction, "dtype": config.dtype}
    if spec.kind == "huber":
        return keras.losses.Huber(delta=_hyperparameter_caster(config.dtype)(spec.delta), **kwargs)
    if spec.kind == "mae":
        return keras.losses.MeanAbsoluteError(**kwargs)
    return keras.losses.MeanSquaredError(**kwargs)


def _hyperparameter_caster(dtype: str):
    """Keras' TF backend casts a Python float hyperparameter through float32 (``ops.cast(0.9,
    "float64")`` is 0.8999999761581421); a NumPy float64, which is a Python float too, keeps
    all its bits. float32 runs keep plain floats, so the optimizer math stays in float32."""
    return np.float64 if dtype == "float64" else float


def make_keras_parts(
    w0: np.ndarray,
    b0: float,
    config: TrainConfig,
    device: str = "cpu",
    schedule: Schedule | None = None,
):
    """(layer, loss, optimizer), all in ``config.dtype``, variables on ``device``; the learning
    rate ``schedule``'s (None: constant)."""
    with device_scope(device), floatx(config.dtype):
        layer = make_dense(w0, b0, config.dtype, use_bias=config.fit_intercept)
        loss = make_loss(config)
        optimizer = make_optimizer(config, schedule)
        if layer.use_bias:  # the bias is never decayed (through the origin there is none)
            optimizer.exclude_from_weight_decay(var_list=[layer.bias])
        optimizer.build(layer.trainable_variables)  # slots now, not inside a traced step
    return layer, loss, optimizer


class KerasTrainer(TrainerBase):
    """What every Keras port shares; a backend adds devices, its runner and its lstsq."""

    # Keras' weight_decay is decoupled, and its SGD momentum buffer holds lr-scaled steps.
    conventions = Conventions(
        adam_eps=ADAM_EPS_HAT, clip_eps=0.0, weight_decay=DECOUPLED, momentum_lr_inside=True
    )
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
            # Joined in the data's dtype and cast once; einsum contracts the rows without the
            # transposed copy that matmul(transpose(A), A) makes (a quarter to a half faster,
            # depending on the backend).
            columns = [X, np.ones((len(X), 1), X.dtype), y[:, None].astype(X.dtype, copy=False)]
            A = ops.cast(
                ops.concatenate([ops.convert_to_tensor(c) for c in columns], axis=1), "float64"
            )
            return ops.convert_to_numpy(ops.einsum("ni,nj->ij", A, A))

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
    store ({"0": step count, "1": learning rate, slots...}; under a schedule no rate variable:
    the step count is the schedule's position), for a runner whose ``layer`` and ``optimizer``
    variables hold the live values."""

    layer: keras.layers.Dense
    optimizer: keras.optimizers.Optimizer

    def params(self) -> tuple[np.ndarray, float]:
        kernel, *bias = self.layer.get_weights()  # no bias through the origin: 0
        return kernel.reshape(-1).astype(np.float64), float(bias[0][0]) if bias else 0.0

    def learning_rate(self) -> float:
        """The optimizer's own: its schedule at its ``iterations``, or its rate variable."""
        return float(self.optimizer.learning_rate)

    def optimizer_state(self) -> dict:
        store: dict = {}
        self.optimizer.save_own_variables(store)
        return store

    def load_optimizer_state(self, state: dict) -> None:
        self.optimizer.load_own_variables(state)
