"""JAX trainer: a params pytree ({"kernel": (d, 1), "bias": (1,)}, flax's Dense layout; no
"bias" through the origin), the loss as a pure function (``optax.losses.squared_error`` /
``huber_loss``), ``jax.value_and_grad``, optax's ``sgd`` / ``adam`` / ``adamw`` with its
schedules and ``add_decayed_weights``, the whole epoch in one jitted ``lax.scan``
(``epoch.py``), and ``jnp.linalg.lstsq``. The model exports as flax msgpack. This package's
``__init__`` turns JAX's float64 on before any of this loads (so the schedules compute their
rates in float64 whatever the run's dtype).
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
from dlport.common.conventions import COUPLED, Conventions
from dlport.common.errors import DlportError
from dlport.common.fitting import TrainerBase
from dlport.common.losses import parse_loss
from dlport.common.parallel import WorkerGroup
from dlport.common.schedules import Schedule
from dlport.common.solve import rank_cutoff
from dlport.frameworks.jax.epoch import ScanEpochs, jax_device, jax_devices


def make_params(w0: np.ndarray, b0: float, dtype: str, bias: bool = True) -> dict:
    """flax.linen.Dense(1, use_bias=bias) / nnx.Linear(d, 1, use_bias=bias)'s layout, so an
    export loads into either; without a bias (through the origin) the pytree has no "bias"
    leaf, so the gradient, the optimizer's slots and the clipping norm have none either."""
    params = {"kernel": jnp.asarray(np.asarray(w0, dtype=dtype).reshape(-1, 1))}
    if bias:
        params["bias"] = jnp.asarray(np.array([b0], dtype=dtype))
    return params


def apply(params: dict, x: jax.Array) -> jax.Array:
    out = x @ params["kernel"]
    return out + params["bias"] if "bias" in params else out  # flax Dense's use_bias


def pointwise_loss(config: TrainConfig):
    """Each sample's loss, ``(predictions, targets) -> losses``: optax's own (its huber_loss is
    r^2/2 within delta, as torch's HuberLoss); mae as ``jnp.abs`` (optax has no L1 loss)."""
    spec = parse_loss(config.loss)
    if spec.kind == "huber":
        return lambda p, t: optax.losses.huber_loss(p, t, delta=spec.delta)
    if spec.kind == "mae":
        return lambda p, t: jnp.abs(p - t)
    return optax.losses.squared_error


def decay_mask(params: dict) -> dict:
    """optax's mask (a callable, so it takes the params' own structure, with or without a
    bias): weight decay on the kernel, never the bias (docs/design.md, "Weight decay")."""
    return {name: name == "kernel" for name in params}


def optax_learning_rate(config: TrainConfig, schedule: Schedule) -> optax.ScalarOrSchedule:
    """``Schedule.rate`` as optax schedules of the update count (0 at the first update): the
    float lr when constant (today's optimizer, no count); else a linear warmup from
    lr/(W+1) to lr over W steps joined at W to the decay, which then counts from 0."""
    lr, spec, warmup = config.lr, schedule.spec, schedule.warmup_steps
    if schedule.constant:
        return lr
    if spec.kind == "step":
        decay = optax.exponential_decay(lr, schedule.step_every, spec.gamma, staircase=True)
    elif spec.kind == "exponential":
        decay = optax.exponential_decay(lr, schedule.steps_per_epoch, spec.gamma)
    elif spec.kind == "cosine":
        decay = optax.cosine_decay_schedule(lr, schedule.decay_steps, alpha=0.0)
    else:
        decay = optax.constant_schedule(lr)
    if warmup:
        ramp = optax.linear_schedule(lr / (warmup + 1), lr, transition_steps=warmup)
        decay = optax.join_schedules([ramp, decay], boundaries=[warmup])
    # optax counts in int32, and JAX divides int32 by an int in float32 even with float64 on:
    # the schedule sees the count as int64, so its rates are float64's.
    return lambda count: decay(jnp.asarray(count, dtype=jnp.int64))


def scheduled_rate(rate: optax.ScalarOrSchedule, opt_state) -> float:
    """The rate of the next update: the schedule at the count optax's ``scale_by_schedule``
    keeps (the updates done), or the constant lr."""
    if not callable(rate):
        return float(rate)
    return float(rate(optax.tree_utils.tree_get(opt_state, "ScaleByScheduleState").count))


def make_optimizer(
    config: TrainConfig, rate: optax.ScalarOrSchedule | None = None
) -> optax.GradientTransformation:
    """optax's own rules match the reference's canonical (torch) forms: ``trace`` keeps
    ``b = g + mu*b`` and nesterov steps along ``g + mu*b``; ``scale_by_adam`` adds eps to
    ``sqrt(v_hat)`` (optax/_src/transform.py, optax/transforms/_accumulation.py).
    ``add_decayed_weights`` adds wd*w to the clipped gradient (coupled, as torch); ``adamw``
    adds it to Adam's step, inside the lr (decoupled). ``rate`` is ``optax_learning_rate``'s
    (default: the constant lr)."""
    rate = config.lr if rate is None else rate
    wd = config.weight_decay
    b1, b2, eps = config.beta1, config.beta2, config.eps
    if config.optimizer == "adamw":
        rule = optax.adamw(rate, b1=b1, b2=b2, eps=eps, weight_decay=wd, mask=decay_mask)
    elif config.optimizer == "adam":
        rule = optax.adam(rate, b1=b1, b2=b2, eps=eps)
    else:
        momentum = None if config.optimizer == "sgd" else config.momentum
        rule = optax.sgd(rate, momentum=momentum, nesterov=config.optimizer == "nesterov")
    parts = [] if config.clip_norm is None else [optax.clip_by_global_norm(config.clip_norm)]
    if wd and config.optimizer != "adamw":
        parts.append(optax.add_decayed_weights(wd, mask=decay_mask))
    return optax.chain(*parts, rule) if parts else rule


def make_step(optimizer: optax.GradientTransformation, pointwise=optax.losses.squared_error):
    """One pure optimizer step: (params, opt_state), batch -> new state, the batch's mean
    ``pointwise`` loss."""

    def loss_fn(params, xb, yb):
        return pointwise(apply(params, xb), yb).mean()

    def step(state, xb, yb):
        params, opt_state = state
        loss, grads = jax.value_and_grad(loss_fn)(params, xb, yb)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    return step


@jax.jit
def block_gram(X: jax.Array, y: jax.Array):
    ones = jnp.ones((X.shape[0], 1), jnp.float64)
    A = jnp.concatenate([X.astype(jnp.float64), ones, y.astype(jnp.float64)[:, None]], axis=1)
    return A.T @ A


class JaxTrainer(TrainerBase):
    name = "jax"
    # optax.clip_by_global_norm: g * C / norm; add_decayed_weights joins the gradient (coupled).
    conventions = Conventions(clip_eps=0.0, weight_decay=COUPLED)
    native_suffix = ".msgpack"

    def version(self) -> str:
        return jax.__version__

    def devices(self) -> list[str]:
        return jax_devices()

    def _extra_versions(self) -> dict[str, str]:
        return {"optax": optax.__version__, "flax": flax.__version__}

    def _runner(self, X, y, w0, b0, config, device, schedule):
        return JaxRunner(X, y, w0, b0, config, device, schedule)

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

    def _leave(self, group, finished):
        jax.distributed.shutdown()

    def _parallel_runner(self, X, y, w0, b0, config, device, schedule, group):
        return DistributedRunner(X, y, w0, b0, config, schedule, group, self.mesh)

    def _all_reduce_sum(self, values, device):
        rows = NamedSharding(self.mesh, P("workers"))
        parts = jax.make_array_from_process_local_data(rows, values.reshape(1, -1))
        total = jax.jit(lambda a: a.sum(axis=0), out_shardings=NamedSharding(self.mesh, P()))
        return np.asarray(total(parts).addressable_data(0))

    def _gram(self, X, y, device):
        with jax.default_device(jax_device(device)):
            return np.asarray(block_gram(jnp.asarray(X), jnp.asarray(y)))

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
    def __init__(self, X, y, w0, b0, config: TrainConfig, device: str, schedule=None):
        self._optimize(config, schedule, len(y))
        params = make_params(w0, b0, config.dtype, config.fit_intercept)
        state = (params, self.optimizer.init(params))
        y = y.reshape(-1, 1)  # apply's (n, 1) output shape
        batch = config.batch_size_for(len(y))
        step = make_step(self.optimizer, pointwise_loss(config))
        super().__init__(step, state, X, y, batch, device, config.tf32)

    def _optimize(self, config: TrainConfig, schedule: Schedule | None, rows: int) -> None:
        """The optimizer, at ``schedule``'s rates (default: the config's, over these rows)."""
        if schedule is None:
            schedule = Schedule.for_rows(config, rows)
        self.rate = optax_learning_rate(config, schedule)
        self.optimizer = make_optimizer(config, self.rate)

    def _host(self, tree):
        """The state's values as NumPy arrays."""
        return jax.device_get(tree)

    def _place(self, tree):
        """NumPy values back where the state lives."""
        return jax.device_put(tree, self.device)

    def params(self):
        params = self._host(self.state[0])
        bias = float(params["bias"][0]) if "bias" in params else 0.0
        return params["kernel"].reshape(-1).astype(np.float64), bias

    def learning_rate(self) -> float:
        return scheduled_rate(self.rate, self._host(self.state[1]))

    def optimizer_state(self) -> dict:
        """optax's state (NamedTuples of slots and step counts, the schedule's count among
        them) as flax's state dict."""
        return flax.serialization.to_state_dict(self._host(self.state[1]))

    def load_optimizer_state(self, state: dict) -> None:
        params, opt_state = self.state
        restored = flax.serialization.from_state_dict(self._host(opt_state), state)
        self.state = (params, self._place(restored))


class DistributedRunner(JaxRunner):
    """``jax.distributed``: a mesh of one device per worker; the epoch is one jitted
    ``shard_map`` of a ``lax.scan`` whose step takes this worker's shard of each global batch,
    its loss the shard's summed losses over the global batch's rows; the gradients come out
    summed over the mesh before optax's update (the same on every worker).

    Global arrays need one shape on every worker: a tail batch split unevenly is padded to its
    longest shard, the padding's rows weighted 0.
    """

    def __init__(self, X, y, w0, b0, config: TrainConfig, schedule, group: WorkerGroup, mesh):
        self._optimize(config, schedule, len(y))
        self.group, self.mesh, self.pointwise = group, mesh, pointwise_loss(config)
        self.X, self.y = np.asarray(X), np.asarray(y, dtype=X.dtype).reshape(-1, 1)
        self.batch_size = config.batch_size_for(len(y))
        params = make_params(w0, b0, config.dtype, config.fit_intercept)
        self.replicated = NamedSharding(mesh, P())
        self.state = self._place((params, self.optimizer.init(params)))
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
        optimizer, pointwise = self.optimizer, self.pointwise

        def step(state, xb, yb, weight, rows):
            params, opt_state = state

            def shard_loss(params):
                errors = pointwise(apply(params, xb), yb)[:, 0]
                return jnp.sum(weight * errors) / rows

            # The params are the same on every worker (unvarying over the mesh), so shard_map's
            # autodiff already sums their gradient over the workers (the transpose of their
            # broadcast to the shards is a psum); the loss is summed here. The schedule's count
            # is in opt_state, the same on every worker.
            loss, grads = jax.value_and_grad(shard_loss)(params)
            loss = jax.lax.psum(loss, "workers")
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss * rows

        return step

    def _place(self, tree):
        """The same values on every worker, as replicated global arrays."""
        return jax.tree.map(
            lambda a: jax.make_array_from_process_local_data(self.replicated, np.asarray(a)), tree
        )

    def _host(self, tree):
        """This worker's copy of replicated global arrays."""
        return jax.tree.map(lambda a: np.asarray(a.addressable_data(0)), tree)

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
        counts = self._place(np.asarray(batch_sizes, dtype=self.X.dtype))
        self.state, losses = self.epoch(self.state, xs, ys, ws, counts)
        return float(np.sum(np.asarray(losses.addressable_data(0)))) / len(order)
