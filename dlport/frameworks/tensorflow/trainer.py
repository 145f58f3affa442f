"""TensorFlow trainer: the Keras parts every Keras port shares (``dlport.frameworks.keras``:
``Dense``, ``keras.losses``, ``keras.optimizers``) on Keras 3's TF backend, and what is
TensorFlow's own: an XLA-compiled ``tf.function`` epoch and ``tf.linalg.lstsq``.

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

import json  # noqa: E402
import logging  # noqa: E402

from dlport.frameworks.keras import use_backend  # noqa: E402

use_backend("tensorflow", "tensorflow")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from dlport.common.batching import epoch_shards, split_batches  # noqa: E402
from dlport.common.config import TrainConfig  # noqa: E402
from dlport.common.errors import DlportError  # noqa: E402
from dlport.common.parallel import WorkerGroup  # noqa: E402
from dlport.frameworks.keras.parts import (  # noqa: E402
    KerasTrainer,
    KerasVariablesState,
    make_keras_parts,
    make_loss,
)

# XLA compiles the whole epoch loop into one native program. Measured on 2 CPU cores (n=100k,
# d=16, batch 256): the epoch call ran 3.5-4x faster than the graph executor runs it, and
# float64 parity stays at ~1e-15. The cost: ~0.5 s of compilation in each run's first epoch.
# Not for every shape: on n=2M, d=64, batch 8192 the graph executor ran 1.3x faster (7.2-7.8M
# against 5.5-6.3M samples/s; system time under 0.03 s per 0.3 s epoch in both): XLA's per-step
# gather of the batch costs ~400 us against ~250 us for TF's kernel. At 2 MiB batches d=16, 32
# and 128 ran 1.2-1.5x faster with XLA and d=256 slower, so no batch-size rule picks the faster
# one; gathering each epoch once instead (512 MB, then slices) was slower in both executors.
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


def parity_settings(tf32: bool = False) -> None:
    """Deterministic ops, and full-precision float32 matmuls (no TF32 on GPU) unless a speed
    run asks, per docs/design.md.

    Determinism is process-wide and one-way by TF's design (there is no public "disable"), so
    set when dlport first computes, not on import; once on, unseeded random ops raise until a
    seed is set.
    """
    tf.config.experimental.enable_op_determinism()
    tf.config.experimental.enable_tensor_float_32_execution(tf32)


class TensorFlowTrainer(KerasTrainer):
    name = "tensorflow"
    mlflow_exported = True  # TensorFlow is here: the SavedModel keeps float64 inputs

    def worker_plan(self, world, ports):
        # tf.distribute's own cluster spec: every worker's address, and this one's index.
        workers = [f"127.0.0.1:{port}" for port in ports[1:]]
        return [{"TF_CONFIG": json.dumps(_tf_config(workers, r))} for r in range(world)], []

    def _join(self, group, device):
        if "TF_CONFIG" not in os.environ:
            raise DlportError(
                "tensorflow across machines reads its cluster from TF_CONFIG (tf.distribute's "
                "own variable); set it on every worker, or run --workers N on one machine"
            )
        # Ring all-reduce (the CPU's; NCCL is for GPUs) with the group's timeout.
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING,
            timeout_seconds=group.timeout,
        )
        self.strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)

    def _parallel_runner(self, X, y, w0, b0, config, device, schedule, group):
        if config.clip_norm is not None:
            raise DlportError(
                "--clip-norm with --workers: Keras clips each worker's gradient before "
                "tf.distribute sums them, not the global norm; train it in one process"
            )
        parity_settings(config.tf32)
        return DistributedRunner(X, y, w0, b0, config, device, schedule, group, self.strategy)

    def _all_reduce_sum(self, values, device):
        return sum_over_workers(self.strategy, tf.constant(values)).numpy()

    def version(self) -> str:
        return tf.__version__

    def devices(self) -> list[str]:
        return ["cpu", "gpu"] if tf.config.list_physical_devices("GPU") else ["cpu"]

    def _parity_settings(self) -> None:
        parity_settings()

    def _runner(self, X, y, w0, b0, config, device, schedule):
        parity_settings(config.tf32)
        return TensorFlowRunner(X, y, w0, b0, config, device, schedule)

    def _solve_exact(self, X, y, device):
        parity_settings()
        with tf.device(_TF_DEVICES[device]):
            # fast=False: complete orthogonal decomposition, not the normal equations; it gives
            # the minimum-norm solution, as NumPy's lstsq, even for rank-deficient data. Its
            # kernel is CPU-only; under a GPU scope TF's soft placement runs it on the CPU.
            coef = tf.linalg.lstsq(tf.constant(X), tf.constant(y.reshape(-1, 1)), fast=False)
        return coef.numpy().reshape(-1)


class TensorFlowRunner(KerasVariablesState):
    """One epoch = one compiled call over the (steps, B) full batches, one more for the tail."""

    def __init__(
        self, X, y, w0, b0, config: TrainConfig, device: str, schedule=None, *, jit_compile=None
    ):
        self.device = _TF_DEVICES[device]
        self.batch_size = config.batch_size_for(len(y))
        self.layer, self.loss, self.optimizer = make_keras_parts(w0, b0, config, device, schedule)
        self.dtype = tf.as_dtype(config.dtype)
        self.set_data(X, y)
        # One signature for every (steps, B) and data size: traced once; XLA compiles once
        # per shape (two in memory; a few more for streamed chunks).
        jit = JIT_COMPILE if jit_compile is None else jit_compile
        data = [tf.TensorSpec([None, None], self.dtype), tf.TensorSpec([None, 1], self.dtype)]
        self.train_batches = tf.function(
            self._train_batches,
            input_signature=[*data, tf.TensorSpec([None, None], tf.int64)],
            jit_compile=jit,
        )
        # Full batch: the natural order (dlport.common.batching), so no gather of all the data.
        self.train_all = tf.function(self._train_all, input_signature=data, jit_compile=jit)

    def set_data(self, X, y) -> None:
        with tf.device(self.device):
            self.X = tf.constant(X)
            self.y = tf.constant(y.reshape(-1, 1))  # the layer's (n, 1) output shape

    def _step(self, xb, yb):
        """One optimizer step on a batch; returns its loss, from before the update."""
        variables = self.layer.trainable_variables
        with tf.GradientTape() as tape:
            loss = self.loss(yb, self.layer(xb))
        grads = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss

    def _train_batches(self, X, y, batches):
        """Train on each row of ``batches`` (sample indices) in turn; return sum(loss * B)."""
        total = tf.zeros([], self.dtype)
        for i in tf.range(tf.shape(batches)[0]):
            idx = batches[i]
            total += self._step(tf.gather(X, idx), tf.gather(y, idx))
        return total * tf.cast(tf.shape(batches)[1], self.dtype)

    def _train_all(self, X, y):
        return self._step(X, y) * tf.cast(tf.shape(X)[0], self.dtype)

    def run_epoch(self, order: np.ndarray) -> float:
        if self.batch_size >= len(order):
            with tf.device(self.device):
                return float(self.train_all(self.X, self.y)) / len(order)
        full, tail = split_batches(np.asarray(order, dtype=np.int64), self.batch_size)
        with tf.device(self.device):
            # batch_size <= n: at least one full batch
            total = self.train_batches(self.X, self.y, full)
            if len(tail):
                total += self.train_batches(self.X, self.y, tail.reshape(1, -1))
            return float(total) / len(order)  # the epoch's one host sync


def sum_over_workers(strategy, value):
    """``value`` summed over the workers, by the strategy's all-reduce."""

    def local(v):
        return tf.distribute.get_replica_context().all_reduce("sum", v)

    return strategy.experimental_local_results(strategy.run(local, args=(value,)))[0]


def _tf_config(workers: list[str], index: int) -> dict:
    return {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}


class DistributedRunner(KerasVariablesState):
    """``MultiWorkerMirroredStrategy``: variables mirrored on every worker, each step run on
    this worker's shard; Keras' optimizer sums the workers' gradients (its all-reduce) before
    the update, so the loss is the shard's summed losses over the global batch's rows. One
    ``tf.function`` call runs an epoch's full batches, one more its tail."""

    def __init__(self, X, y, w0, b0, config, device, schedule, group: WorkerGroup, strategy):
        self.device, self.group, self.strategy = _TF_DEVICES[device], group, strategy
        self.batch_size = config.batch_size_for(len(y))
        with strategy.scope():
            self.layer, _, self.optimizer = make_keras_parts(w0, b0, config, device, schedule)
        # Keras' own loss, summed over the shard's rows: divided by the global batch's below
        self.sum_loss = make_loss(config, reduction="sum")
        self.dtype = tf.as_dtype(config.dtype)
        with tf.device(self.device):
            self.X, self.y = tf.constant(X), tf.constant(y.reshape(-1, 1))
        data = [tf.TensorSpec([None, None], self.dtype), tf.TensorSpec([None, 1], self.dtype)]
        shards = [tf.TensorSpec([None, None], tf.int64), tf.TensorSpec([], self.dtype)]
        self.train_shards = tf.function(self._train_shards, input_signature=[*data, *shards])

    def _step(self, xb, yb, rows):
        variables = self.layer.trainable_variables
        with tf.GradientTape() as tape:
            loss = self.sum_loss(yb, self.layer(xb)) / rows
        grads = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss * rows

    def _train_shards(self, X, y, shards, rows):
        """Each row of ``shards`` is this worker's part of a global batch of ``rows`` rows."""
        total = tf.zeros([], self.dtype)
        for i in tf.range(tf.shape(shards)[0]):
            idx = shards[i]
            per_replica = self.strategy.run(
                self._step, args=(tf.gather(X, idx), tf.gather(y, idx), rows)
            )
            total += self.strategy.experimental_local_results(per_replica)[0]
        return total

    def run_epoch(self, order: np.ndarray) -> float:
        rank, world = self.group.rank, self.group.world
        rows, shard_sizes, batch_sizes = epoch_shards(order, self.batch_size, rank, world)
        full = sum(1 for b in batch_sizes if b == self.batch_size)
        width = shard_sizes[0]
        with tf.device(self.device):
            total = self.train_shards(
                self.X, self.y, rows[: full * width].reshape(full, width), self.batch_size
            )
            if full < len(batch_sizes):  # the tail batch, its shards one row apart at most
                tail = rows[full * width :].reshape(1, -1)
                total += self.train_shards(self.X, self.y, tail, batch_sizes[-1])
            total = sum_over_workers(self.strategy, total)
        return float(total) / len(order)
