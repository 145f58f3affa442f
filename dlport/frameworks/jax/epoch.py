"""The jitted epoch both JAX ports (jax, keras-jax) run: one ``jax.lax.scan`` of a pure train
step over the epoch's full batches, then the partial tail batch, in one compiled call.
Its package's ``__init__`` has turned JAX's float64 on.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from dlport.common.batching import split_batches


def jax_device(device: str) -> jax.Device:
    # This process's own: in a data-parallel run jax.devices() lists every worker's.
    return jax.local_devices(backend="gpu" if device == "gpu" else "cpu")[0]


def jax_devices() -> list[str]:
    try:
        return ["cpu", "gpu"] if jax.devices("gpu") else ["cpu"]
    except RuntimeError:  # no GPU backend in this jaxlib
        return ["cpu"]


def compile_epoch(step):
    """``step(state, xb, yb) -> (state, loss)``, pure, as a jitted
    ``epoch(state, X, y, full, tail) -> (state, sum of loss * batch rows)``.

    ``full`` is (steps, B) sample indices, or None for full batch (the natural order, so no
    gather); ``tail`` is the partial last batch or None. Its shapes are fixed for a run, so the
    epoch compiles once, in the first epoch, and never again.
    """

    def epoch(state, X, y, full, tail):
        if full is None:
            state, loss = step(state, X, y)
            return state, loss * X.shape[0]

        def one_batch(state, idx):
            return step(state, X[idx], y[idx])

        state, losses = jax.lax.scan(one_batch, state, full)
        total = jnp.sum(losses) * full.shape[1]
        if tail is not None:
            state, loss = one_batch(state, tail)
            total = total + loss * tail.shape[0]
        return state, total

    # The previous state's buffers are reused for the next (no copy per epoch).
    return jax.jit(epoch, donate_argnums=0)


class ScanEpochs:
    """Runs ``compile_epoch(step)`` over dlport's batch orders; the state lives on the device and
    the host waits once per epoch, for the loss."""

    def __init__(self, step, state, X, y, batch_size: int, device: str, tf32: bool = False):
        self.device = jax_device(device)
        # XLA's default lets float32 matmuls on NVIDIA GPUs run in TF32; parity needs float32.
        self.precision = "tensorfloat32" if tf32 else "float32"
        self.state = jax.device_put(state, self.device)
        self.set_data(X, y)
        self.batch_size = batch_size
        self.epoch = compile_epoch(step)

    def set_data(self, X, y) -> None:
        """New rows (streamed chunks): a new shape compiles the epoch once more."""
        self.y_shape = getattr(self, "y_shape", y.shape[1:])
        self.X = jax.device_put(X, self.device)
        self.y = jax.device_put(y.reshape((-1, *self.y_shape)), self.device)

    def run_epoch(self, order: np.ndarray) -> float:
        full = tail = None
        if self.batch_size < len(order):
            full, tail = split_batches(np.asarray(order, dtype=np.int64), self.batch_size)
            full = jax.device_put(full, self.device)
            tail = jax.device_put(tail, self.device) if len(tail) else None
        with jax.default_matmul_precision(self.precision):
            self.state, total = self.epoch(self.state, self.X, self.y, full, tail)
        return float(total) / len(order)  # the epoch's one host sync
