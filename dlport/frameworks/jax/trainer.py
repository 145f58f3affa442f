"""JAX trainer: a params pytree ({"kernel": (d, 1), "bias": (1,)}, flax's Dense layout), the
loss as a pure function (``optax.losses.squared_error``), ``jax.value_and_grad``, optax's
``sgd`` / ``adam``, the whole epoch in one jitted ``lax.scan`` (``epoch.py``), and
``jnp.linalg.lstsq``. The model exports as flax msgpack. This package's ``__init__`` turns
JAX's float64 on before any of this loads.
"""

from __future__ import annotations

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from dlport.common.atomic import write_bytes_atomic
from dlport.common.batching import epoch_shards
from dlport.common.config import TrainConfig
from dlport.common.conventions import Conventions
from dlport.common.errors import DlportError
from dlport.common.fitting import TrainerBase
from dlport.common.parallel import WorkerGroup
from dlport.common.solve import rank_cutoff
from dlport.frameworks.jax.epoch import ScanEpochs, jax_device, jax_devices


def make_params(w0: np.ndarray, b0: float, dtype: str) -> dict:
    """flax.linen.Dense(1) / nnx.Linear(d, 1)'s layout, so an export loads into either."""
    return {
        "kernel": jnp.asarray(np.asarray(w0, dtype=dtype).reshape(-1, 1)),
        "bias": jnp.asarray(np.array([b0], dtype=dtype)),
    }


def apply(params: dict, x: jax.Array) -> jax.Array:
    return x @ params["kernel"] + params["bias"]


def loss_fn(params: dict, xb: jax.Array, yb: jax.Array) -> jax.Array:
    return optax.losses.squared_error(apply(params, xb), yb).mean()


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """optax's own rules match the reference's canonical (torch) forms: ``trace`` keeps
    ``b = g + mu*b`` and nesterov steps along ``g + mu*b``; ``scale_by_adam`` adds eps to
    ``sqrt(v_hat)`` (optax/_src/transform.py, optax/transforms/_accumulation.py)."""
    if config.optimizer == "adam":
        rule = optax.adam(config.lr, b1=config.beta1, b2=config.beta2, eps=config.eps)
    else:
        momentum = None if config.optimizer == "sgd" else config.momentum
        rule = optax.sgd(config.lr, momentum=momentum, nesterov=config.optimizer == "nesterov")
    if config.clip_norm is None:
        return rule
    return optax.chain(optax.clip_by_global_norm(config.clip_norm), rule)


def make_step(optimizer: optax.GradientTransformation):
    """One pure optimizer step: (params, opt_state), batch -> new state, the batch's loss."""

    def step(state, xb, yb):
        params, opt_state = state
        loss, grads = jax.value_and_grad(loss_fn)(params, xb, yb)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    return step


@jax.jit
def block_gram(X: jax.Array, y: jax.Array):
    A, b = X.astype(jnp.float64), y.astype(jnp.float64)
    return A.T @ A, A.sum(axis=0), A.T @ b, b.sum()


class JaxTrainer(TrainerBase):
    name = "jax"
    conventions = Conventions(clip_eps=0.0)  # optax.clip_by_global_norm: g * C / norm
    native_suffix = ".msgpack"

    def version(self) -> str:
        return jax.__version__

    def devices(self) -> list[str]:
        return jax_devices()

    def _extra_versions(self) -> dict[str, str]:
        return {"optax": optax.__version__, "flax": flax.__version__}

    def _runner(self, X, y, w0, b0, config, device):
        return JaxRunner(X, y, w0, b0, config, device)

    def _solve_exact(self, X, y, device):
        with jax.default_device(jax_device(device)):
            rcond = rank_cutoff(X.dtype, *X.shape)
            return np.asarray(jnp.linalg.lstsq(jnp.asarray(X), jnp.asarray(y), rcond=rcond)[0])

    def _join(self, group, device):
        # One process per worker, its one device in a global mesh; CPU collectives over gloo.
        # On the CPU, only the CPU: JAX would otherwise bring up NCCL on any GPU it finds, and
        # N processes on one GPU are refused ("Duplicate GPU detected").
        if device == "cpu":
            jax.config.update("jax_platforms", "cpu")
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        # On GPUs, started here, each worker takes its own: JAX's one-GPU-per-process layout.
        gpus = [group.rank] if group.local and device != "cpu" else None
        jax.distributed.initialize(
            group.coordinator,
            local_device_ids=gpus,
            num_processes=group.world,
            process_id=group.rank,
            initialization_timeout=int(group.timeout),
            heartbeat_timeout_seconds=int(group.timeout),
        )
        self.mesh = jax.make_mesh((group.world,), ("workers",), devices=jax.devices())

    def _leave(self, group):
        jax.distributed.shutdown()

    def _parallel_runner(self, X, y, w0, b0, config, device, group):
        return DistributedRunner(X, y, w0, b0, config, group, self.mesh)

    def _all_reduce_sum(self, values, device):
        rows = NamedSharding(self.mesh, P("workers"))
        parts = jax.make_array_from_process_local_data(rows, values.reshape(1, -1))
        total = jax.jit(lambda a: a.sum(axis=0), out_shardings=NamedSharding(self.mesh, P()))
        return np.asarray(total(parts).addressable_data(0))

    def _gram(self, X, y, device):
        with jax.default_device(jax_device(device)):
            return block_gram(jnp.asarray(X), jnp.asarray(y))

    def _solve_gram(self, A, b, device):
        with jax.default_device(jax_device(device)):
            return np.asarray(jnp.linalg.solve(jnp.asarray(A), jnp.asarray(b)))

    def _predict(self, X, w, b, device):
        with jax.default_device(jax_device(device)):
            return np.asarray(apply(make_params(w, b, X.dtype.name), jnp.asarray(X)))

    def export_native(self, weights, bias, path, dtype="float64"):
        # flax msgpack of the params pytree: flax.serialization.msgpack_restore(bytes) gives
        # {"kernel", "bias"}, from_bytes loads it into a flax Dense/Linear's params.
        params = jax.device_get(make_params(weights, bias, dtype))
        write_bytes_atomic(path, flax.serialization.to_bytes(params))

    def import_native(self, path):
        try:
            with open(path, "rb") as f:
                params = flax.serialization.msgpack_restore(f.read())
            kernel, bias = np.asarray(params["kernel"]), np.asarray(params["bias"])
        except Exception as exc:  # msgpack raises many types for a bad file
            raise DlportError(
                f"{path} is not flax msgpack of a Dense(1)'s params ({exc})"
            ) from None
        return kernel.astype(np.float64).reshape(-1), float(bias.reshape(-1)[0])


class JaxRunner(ScanEpochs):
    def __init__(self, X, y, w0, b0, config: TrainConfig, device: str):
        self.optimizer = make_optimizer(config)
        params = make_params(w0, b0, config.dtype)
        state = (params, self.optimizer.init(params))
        y = y.reshape(-1, 1)  # apply's (n, 1) output shape
        batch = config.batch_size_for(len(y))
        super().__init__(make_step(self.optimizer), state, X, y, batch, device, config.tf32)

    def params(self):
        params = jax.device_get(self.state[0])
        return params["kernel"].reshape(-1).astype(np.float64), float(params["bias"][0])

    def optimizer_state(self) -> dict:
        """optax's state (NamedTuples of slots and step counts) as flax's state dict."""
        return flax.serialization.to_state_dict(jax.device_get(self.state[1]))

    def load_optimizer_state(self, state: dict) -> None:
        params, opt_state = self.state
        restored = flax.serialization.from_state_dict(opt_state, state)
        self.state = jax.device_put((params, restored), self.device)


class DistributedRunner(JaxRunner):
    """``jax.distributed``: a mesh of one device per worker; the epoch is one jitted
    ``shard_map`` of a ``lax.scan`` whose step takes this worker's shard of each global batch,
    its loss the shard's squared errors over the global batch's rows; the gradients come out
    summed over the mesh before optax's update (the same on every worker).

    Global arrays need one shape on every worker: a tail batch split unevenly is padded to its
    longest shard, the padding's rows weighted 0.
    """

    def __init__(self, X, y, w0, b0, config: TrainConfig, group: WorkerGroup, mesh):
        self.optimizer, self.group, self.mesh = make_optimizer(config), group, mesh
        self.X, self.y = np.asarray(X), np.asarray(y, dtype=X.dtype).reshape(-1, 1)
        self.batch_size = config.batch_size_for(len(y))
        params = make_params(w0, b0, config.dtype)
        self.replicated = NamedSharding(mesh, P())
        self.state = self._global((params, self.optimizer.init(params)))
        self.sharded = NamedSharding(mesh, P(None, "workers"))
        step = self._shard_step()
        epoch = jax.shard_map(
            lambda state, xs, ys, weights, rows: jax.lax.scan(
                lambda st, batch: step(st, *batch), state, (xs, ys, weights, rows)
            ),
            mesh=mesh,
            in_specs=(P(), P(None, "workers"), P(None, "workers"), P(None, "workers"), P()),
            out_specs=(P(), P()),
        )
        self.epoch = jax.jit(epoch, donate_argnums=0)

    def _shard_step(self):
        optimizer = self.optimizer

        def step(state, xb, yb, weight, rows):
            params, opt_state = state

            def shard_loss(params):
                errors = optax.losses.squared_error(apply(params, xb), yb)[:, 0]
                return jnp.sum(weight * errors) / rows

            # The params are the same on every worker (unvarying over the mesh), so shard_map's
            # autodiff already sums their gradient over the workers (the transpose of their
            # broadcast to the shards is a psum); the loss is summed here.
            loss, grads = jax.value_and_grad(shard_loss)(params)
            loss = jax.lax.psum(loss, "workers")
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss * rows

        return step

    def _global(self, tree):
        """The same values on every worker, as replicated global arrays."""
        return jax.tree.map(
            lambda a: jax.make_array_from_process_local_data(self.replicated, np.asarray(a)), tree
        )

    def run_epoch(self, order: np.ndarray) -> float:
        rank, world = self.group.rank, self.group.world
        rows, shard_sizes, batch_sizes = epoch_shards(order, self.batch_size, rank, world)
        width = -(-batch_sizes[0] // world)
        index = np.zeros((len(batch_sizes), width), dtype=np.int64)
        weight = np.zeros((len(batch_sizes), width), dtype=self.X.dtype)
        start = 0
        for i, size in enumerate(shard_sizes):  # the tail's shards padded, weighted 0
            index[i, :size], weight[i, :size] = rows[start : start + size], 1
            start += size
        local = (self.X[index], self.y[index], weight)
        xs, ys, ws = (jax.make_array_from_process_local_data(self.sharded, a) for a in local)
        counts = self._global(np.asarray(batch_sizes, dtype=self.X.dtype))
        self.state, losses = self.epoch(self.state, xs, ys, ws, counts)
        return float(np.sum(np.asarray(losses.addressable_data(0)))) / len(order)

    def params(self):
        kernel, bias = (
            np.asarray(a.addressable_data(0))
            for a in (self.state[0]["kernel"], self.state[0]["bias"])
        )
        return kernel.reshape(-1).astype(np.float64), float(bias[0])

    def optimizer_state(self) -> dict:
        local = jax.tree.map(lambda a: np.asarray(a.addressable_data(0)), self.state[1])
        return flax.serialization.to_state_dict(local)

    def load_optimizer_state(self, state: dict) -> None:
        params, opt_state = self.state
        local = jax.tree.map(lambda a: np.asarray(a.addressable_data(0)), opt_state)
        self.state = (params, self._global(flax.serialization.from_state_dict(local, state)))
