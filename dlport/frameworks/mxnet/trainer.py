"""MXNet trainer: ``gluon.nn.Dense``, Gluon's losses, ``gluon.Trainer`` (sgd / nag / adam /
AdamW by ``contrib.adamw_update``) with ``mx.lr_scheduler`` schedules, and an LQ-factorisation
least-squares solve with ``mx.nd.linalg``.

Data live on the device; each epoch's batch order is gathered there once (``nd.take``) and the
batches are views of it; the epoch loss is summed there, so the host waits once per epoch, not
once per step.

MXNet's conventions (docs/design.md), each checked against the 1.9.1 sources:

- ``L2Loss`` is ``weight/2 * (pred - label)^2`` per sample; ``weight=2.0`` makes it the squared
  error, so its batch mean is the MSE that every port reports and differentiates.
- ``backward()`` sums the gradient over the batch (of the per-sample loss vector, or of its
  sum, which is the same) and ``Trainer.step(m)`` scales it by ``rescale_grad = 1/m``:
  together, the MSE gradient.
- Optimizer hyperparameters (lr, momentum, betas, epsilon, rescale_grad) are C ``float`` in the
  update operators, so a float64 run uses them rounded to float32; the reference follows with
  ``Conventions(float32_hyperparameters=True)``.
- Adam is the "epsilon hat" form: ``lr * sqrt(1-b2^t)/(1-b1^t)`` is computed in Python (float64)
  and handed to ``adam_update`` as a C float.
- ``wd`` is coupled: the update ops add ``wd * weight`` to the rescaled gradient (sgd_mom_update,
  nag_mom_update, adam_update); Gluon's ``wd_mult = 0`` keeps it off the bias.
- Momentum keeps lr inside its buffer (sgd_mom_update: ``mom = mu*mom - lr*g; w += mom``;
  nag_mom_update likewise): ``Conventions(momentum_lr_inside=True)``. nag_mom_update, in place,
  writes the weight before the buffer, whose ``wd * weight`` then reads the new weight
  (``nesterov_decay_reads_new_weight``).
- AdamW (``AdamW`` below) hands the rate and the bias correction to ``adamw_update`` as two C
  floats (``adamw_rate_times_correction``).
- The optimizer calls its ``lr_scheduler`` with ``num_update``, 1 at the first update.
"""

from __future__ import annotations

import functools
import math
import os
import re
import tempfile
import warnings

# Parity on Ampere/Hopper GPUs: full float32 matmuls, no TF32 (docs/design.md); read when
# CUDA starts.
os.environ.setdefault("NVIDIA_TF32_OVERRIDE", "0")

import numpy as np  # noqa: E402

from dlport.frameworks.mxnet.numpy_compat import restore_numpy_aliases  # noqa: E402

restore_numpy_aliases()  # numpy >= 1.24 (Python 3.12) lacks a name MXNet 1.9.1 reads

with warnings.catch_warnings():
    # mxnet 1.9.1's import touches NumPy names deprecated since 1.20 (npv, LooseVersion, ...).
    warnings.simplefilter("ignore", DeprecationWarning)
    # MXNET_ENGINE_TYPE is left to the user: NaiveEngine (every operator synchronous, in the
    # calling thread) ran medium 0-12% faster on 2 CPU cores, but it is process-wide, read once
    # at this import, and MXNet's debugging engine (no overlap of host and device work).
    import mxnet as mx  # noqa: E402
    from mxnet import autograd, gluon, nd  # noqa: E402

from dlport.common.atomic import write_bytes_atomic  # noqa: E402
from dlport.common.batching import epoch_shards  # noqa: E402
from dlport.common.config import TrainConfig  # noqa: E402
from dlport.common.conventions import ADAM_EPS_HAT, Conventions  # noqa: E402
from dlport.common.errors import DlportError  # noqa: E402
from dlport.common.fitting import TrainerBase  # noqa: E402
from dlport.common.losses import parse_loss  # noqa: E402
from dlport.common.onnx_model import Exported, import_onnx  # noqa: E402
from dlport.common.parallel import Service  # noqa: E402
from dlport.common.schedules import Schedule  # noqa: E402

# hybridize(static_alloc=True, static_shape=True) on the forward + loss block: one CachedOp call
# forward and one backward instead of ~6 imperative operator calls each way. Measured on 2 CPU
# cores (n=100k, d=16, batch 256, float32): 2.7k-3.9k steps/s against 1.5k-1.9k imperative;
# bit-identical trajectories (tests/frameworks/test_mxnet.py).
HYBRIDIZE = True
# Per-step loss totals summed on the device in chunks of this many (one add_n each).
_SUM_EVERY = 512


def _context(device: str) -> mx.Context:
    return mx.gpu(0) if device == "gpu" else mx.cpu()


def _gpu_count() -> int:
    try:
        return mx.context.num_gpus()
    except mx.MXNetError:  # a CUDA build without a usable driver
        return 0


@functools.lru_cache(maxsize=1)
def _gpu_problem() -> str | None:
    """Why MXNet cannot compute on GPU 0 (None if it can): a tiny op, run to completion.

    MXNet's CUDA builds stop at sm_86; on a newer GPU (Hopper) it counts the GPU, then fails
    at the first kernel ("no kernel image is available").
    """
    if _gpu_count() == 0:
        return "no GPU visible to this MXNet build"
    try:
        a = nd.ones((2,), ctx=mx.gpu(0))
        (a + a).wait_to_read()
    except mx.MXNetError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        # "[12:00:00] ../src/file.cc:42: Check failed: ... CUDA: <reason>" -> the reason part
        return re.sub(r"^\[[\d:]+\] \S+: ", "", lines[0]) if lines else type(exc).__name__
    return None


def make_dense(
    w0: np.ndarray, b0: float, dtype: str, ctx: mx.Context, use_bias: bool = True
) -> gluon.nn.Dense:
    """``Dense(1)`` storing and computing in ``dtype``, loaded with the given values; with
    ``use_bias=False`` Gluon's own bias-free layer (``net.bias`` is None, so no optimizer slot)."""
    net = gluon.nn.Dense(1, in_units=len(w0), dtype=dtype, use_bias=use_bias)
    # Zeros: the values come from dlport.common.init, no random draw needed.
    net.initialize(mx.init.Zero(), ctx=ctx)
    set_dense(net, w0, b0)
    return net


def set_dense(net: gluon.nn.Dense, w0: np.ndarray, b0: float) -> None:
    """Load ``net``'s weight (and its bias, if it has one) with the given values."""
    ctx, dtype = net.weight.list_ctx()[0], net.weight.dtype
    net.weight.set_data(nd.array(np.reshape(w0, (1, -1)), ctx=ctx, dtype=dtype))
    if net.bias is not None:
        net.bias.set_data(nd.array([b0], ctx=ctx, dtype=dtype))


@mx.optimizer.register
class AdamW(mx.optimizer.Adam):
    """Adam with decoupled weight decay, by MXNet's own fused ``contrib.adamw_update``
    (``w -= eta * (lr * m / (sqrt(v) + eps) + wd * w)``, m and v as ``adam_update``'s): MXNet
    1.9.1 has the operator but no optimizer for it (2.0's ``mx.optimizer.AdamW`` wraps the same
    operator). eta is the scheduled rate and lr Adam's bias correction sqrt(1-b2^t)/(1-b1^t), so
    that the decay is lr_t * wd * w, torch's and Keras' AdamW (2.0 passes eta = lr_t times the
    correction, which scales the decay by it too). Betas and epsilon as ``Adam``'s."""

    def update(self, index, weight, grad, state):
        self._update_count(index)
        lr, wd = self._get_lr(index), self._get_wd(index)
        t = self._index_update_count[index]
        correction = math.sqrt(1.0 - self.beta2**t) / (1.0 - self.beta1**t)
        # rescale_grad as an array here (the operator skips the update if it is not finite).
        scale = nd.full((1,), self.rescale_grad, ctx=weight.context)  # float32, as it must be
        mean, var = state
        nd.contrib.adamw_update(
            weight,
            grad,
            mean,
            var,
            scale,
            lr=correction,
            eta=lr,
            wd=wd,
            beta1=self.beta1,
            beta2=self.beta2,
            epsilon=self.epsilon,
            out=weight,
        )


def make_scheduler(schedule: Schedule) -> mx.lr_scheduler.LRScheduler | None:
    """MXNet's own scheduler giving ``schedule.rate(t)`` to update t (0-based), which MXNet
    calls with ``num_update = t + 1``; None for a constant rate.

    Its linear warmup from 0 over W + 1 updates is lr * (t + 1) / (W + 1) for t < W, and its
    decays count num_update - (W + 1) = t - W after it. ``FactorScheduler`` decays every
    ``step`` updates: every E * S for step:E:G, each update by G^(1/S) for exponential:G, never
    (factor 1) for warmup alone; it counts from update 0, warmup included, so its ``count``
    starts at W. ``stop_factor_lr=0``: no floor.
    """
    if schedule.constant:
        return None
    W, spec = schedule.warmup_steps, schedule.spec
    warmup = {"base_lr": schedule.lr, "warmup_steps": W + 1, "warmup_begin_lr": 0.0}
    if spec.kind == "cosine":  # (1 + cos(pi * s / (max_update - (W + 1)))) / 2: to 0 at T
        return mx.lr_scheduler.CosineScheduler(schedule.total_steps + 1, final_lr=0.0, **warmup)
    every, factor = {
        "step": (schedule.step_every, spec.gamma),
        "exponential": (1, spec.gamma ** (1 / schedule.steps_per_epoch)),
    }.get(spec.kind, (1, 1.0))
    scheduler = mx.lr_scheduler.FactorScheduler(every, factor, stop_factor_lr=0.0, **warmup)
    scheduler.count = W
    return scheduler


# What MXNet's schedulers change as they go (the rest is their settings): a run's position.
_SCHEDULER_POSITION = ("base_lr", "count")


def make_trainer(params, config: TrainConfig, kvstore=None, scheduler=None) -> gluon.Trainer:
    """``gluon.Trainer`` with MXNet's own optimizer for ``config.optimizer``, its coupled ``wd``
    and ``scheduler`` (an ``mx.lr_scheduler`` one, or None: the constant ``config.lr``).

    One device, so no kvstore (but a data-parallel run's ``dist_sync`` one, which sums the
    workers' gradients): updates run in-process through the optimizer's ``Updater``
    (sgd aggregates weight and bias into one ``multi_sgd_[mom_]update`` call). No
    ``multi_precision``: it only adds float32 master copies for float16 weights; float64
    weights keep float64 optimizer states.
    """
    if config.optimizer in ("adam", "adamw"):
        name = config.optimizer
        hyper = {"beta1": config.beta1, "beta2": config.beta2, "epsilon": config.eps}
    elif config.optimizer == "nesterov":
        name, hyper = "nag", {"momentum": config.momentum}
    else:
        name = "sgd"
        hyper = {"momentum": config.momentum if config.optimizer == "momentum" else 0.0}
    hyper |= {"learning_rate": config.lr, "wd": config.weight_decay}
    if scheduler is not None:
        hyper["lr_scheduler"] = scheduler
    if kvstore is None:
        return gluon.Trainer(params, name, hyper, kvstore=None)
    # update_on_kvstore=False: the server only sums; every worker applies the same update.
    trainer = gluon.Trainer(params, name, hyper, kvstore=kvstore, update_on_kvstore=False)
    # Gluon broadcasts the initial weights through the server at the first step, and a worker
    # whose pull comes after the others' first push gets their gradient sum as its weights
    # (the server keeps the last sum under the same key). Broadcast now, all finish, then on.
    trainer._init_kvstore()
    trainer._init_params()
    for param in params.values():
        param.data().wait_to_read()
    kvstore._barrier()
    return trainer


def make_loss(config: TrainConfig) -> gluon.loss.Loss:
    """Gluon's loss for ``config.loss``, per sample."""
    spec = parse_loss(config.loss)
    if spec.kind == "huber":
        # HuberLoss(rho) is huber / rho (r^2 / (2 rho) inside): weight=rho scales it back.
        return gluon.loss.HuberLoss(rho=spec.delta, weight=spec.delta)
    if spec.kind == "mae":
        return gluon.loss.L1Loss()
    # weight=2.0: the per-sample loss is (pred - y)^2, not L2Loss's default half of it.
    return gluon.loss.L2Loss(weight=2.0)


class BatchLoss(gluon.HybridBlock):
    """``loss_fn(net(x), y)`` summed over the batch, as one block: hybridized, forward and loss
    are one CachedOp (and their backward one more).

    The sum is what ``loss.backward()`` on the per-sample vector differentiates anyway (MXNet
    sums the gradient over the batch; ``Trainer.step(m)`` divides by m), and it gives each
    step's loss total for the epoch without another operator call.
    """

    def __init__(self, net: gluon.HybridBlock, loss_fn: gluon.loss.Loss, **kwargs):
        super().__init__(**kwargs)
        self.net, self.loss_fn = net, loss_fn

    def hybrid_forward(self, F, x, y):
        return F.sum(self.loss_fn(self.net(x), y))


class MXNetTrainer(TrainerBase):
    name = "mxnet"
    conventions = Conventions(
        adam_eps=ADAM_EPS_HAT,
        float32_hyperparameters=True,
        clip_eps=1e-8,
        clip_summed=True,
        parallel_sum_float32=True,
        momentum_lr_inside=True,
        nesterov_decay_reads_new_weight=True,
        adamw_rate_times_correction=True,
    )
    native_suffix = ".params"  # gluon Block.save_parameters

    def __init__(self, hybridize: bool = HYBRIDIZE):
        self.hybridize = hybridize

    def version(self) -> str:
        return mx.__version__

    def devices(self) -> list[str]:
        return ["cpu", "gpu"] if _gpu_problem() is None else ["cpu"]

    def resolve_device(self, requested: str) -> str:
        # A GPU that MXNet sees but cannot run on (its CUDA builds stop at sm_86): say so, rather
        # than "sees no GPU"; --device auto then uses the CPU.
        if requested == "gpu" and _gpu_count() > 0 and _gpu_problem() is not None:
            raise DlportError(
                f"--device gpu: mxnet {mx.__version__} sees a GPU but cannot run on it "
                f"({_gpu_problem()}); its CUDA builds stop at sm_86; use --device cpu"
            )
        return super().resolve_device(requested)

    def _runner(self, X, y, w0, b0, config, device, schedule=None):
        ctx, fast = _context(device), self.hybridize
        return MXNetRunner(X, y, w0, b0, config, ctx, hybridize=fast, schedule=schedule)

    def _solve_exact(self, X, y, device):
        return lstsq(X, y, _context(device))

    def worker_plan(self, world, ports):
        # MXNet's parameter server, started as its own launcher does: one scheduler (at the
        # coordinator's port) and one server, which run at `import mxnet` and exit after.
        dmlc = {
            "DMLC_PS_ROOT_URI": "127.0.0.1",
            "DMLC_PS_ROOT_PORT": str(ports[0]),
            "DMLC_NUM_SERVER": "1",
            "DMLC_NUM_WORKER": str(world),
        }
        code = "import dlport.frameworks.mxnet.trainer"
        services = [
            Service(f"MXNet {role}", dmlc | {"DMLC_ROLE": role}, code)
            for role in ("scheduler", "server")
        ]
        return [dmlc | {"DMLC_ROLE": "worker"} for _ in range(world)], services

    def _join(self, group, device):
        if "DMLC_ROLE" not in os.environ:
            raise DlportError(
                "mxnet across machines reads its scheduler from DMLC_PS_ROOT_URI, "
                "DMLC_PS_ROOT_PORT, DMLC_NUM_SERVER, DMLC_NUM_WORKER and DMLC_ROLE=worker "
                "(MXNet's own launcher sets them); or run --workers N on one machine"
            )
        self.kvstore = mx.kv.create("dist_sync")

    def _parallel_runner(self, X, y, w0, b0, config, device, schedule, group):
        ctx, fast = _context(device), self.hybridize
        return DistributedRunner(
            X, y, w0, b0, config, ctx, hybridize=fast, schedule=schedule, kvstore=self.kvstore
        )

    def _all_reduce_sum(self, values, device):  # once a run: the exact solver's sums
        values = nd.array(values, dtype="float64")
        return WorkerSum(self.kvstore, _GRAM_KEY, values)(values)

    def _gram(self, X, y, device):
        ctx = _context(device)
        # Joined in the data's dtype, then cast once (a third faster than casting each part).
        columns = (X, np.ones((len(X), 1), X.dtype), y.reshape(-1, 1))
        joined = nd.concat(*(nd.array(c, ctx=ctx, dtype=X.dtype) for c in columns), dim=1)
        A = joined.astype("float64", copy=False)
        return nd.dot(A, A, transpose_a=True).asnumpy()

    def _solve_gram(self, A, b, device):
        # Cholesky (potrf: A = L L^T), then two triangular solves, as MXNet's LAPACK ops go.
        ctx = _context(device)
        L = nd.linalg.potrf(nd.array(A, ctx=ctx, dtype="float64"))
        rhs = nd.array(b.reshape(-1, 1), ctx=ctx, dtype="float64")
        half = nd.linalg.trsm(L, rhs, lower=True)
        return nd.linalg.trsm(L, half, transpose=True, lower=True).asnumpy().reshape(-1)

    def _predict(self, X, w, b, device):
        ctx = _context(device)
        net = make_dense(w, b, str(X.dtype), ctx)
        return net(nd.array(X, ctx=ctx, dtype=X.dtype)).asnumpy().reshape(-1)

    def export_native(self, weights, bias, path, dtype="float64"):
        # A Gluon parameter file: Dense(1, in_units=d, dtype=dtype).load_parameters(path); a
        # float32 one loads into a plain Dense(1)
        net = make_dense(np.asarray(weights, dtype=dtype), bias, dtype, mx.cpu())
        with tempfile.TemporaryDirectory() as tmp:
            name = os.path.join(tmp, "model.params")
            net.save_parameters(name)
            with open(name, "rb") as fh:
                write_bytes_atomic(path, fh.read())

    def onnx_model(self, weights, bias, dtype):
        # MXNet's own exporter, mx.onnx, from the hybridized block's symbol and parameter files
        onnx = import_onnx()
        if not hasattr(onnx, "mapping"):
            return self.onnx_reference(
                weights,
                bias,
                dtype,
                f"mx.onnx (MXNet 1.9.1) reads onnx.mapping, which onnx {onnx.__version__} no "
                "longer has (pip install 'onnx<1.17' for mx.onnx)",
            )
        d = len(weights)
        net = make_dense(np.asarray(weights, dtype=dtype), bias, dtype, mx.cpu())
        net.hybridize()
        net(nd.zeros((2, d), dtype=dtype))  # the symbol is traced on the first call
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # its onnx.mapping reads
            prefix = os.path.join(tmp, "model")
            net.export(prefix)
            path = mx.onnx.export_model(
                f"{prefix}-symbol.json",
                f"{prefix}-0000.params",
                [(2, d)],
                [np.dtype(dtype)],
                f"{prefix}.onnx",
                dynamic=True,
                dynamic_input_shapes=[(None, d)],
            )
            exported = onnx.load(path)
        return Exported(exported, f"mx.onnx.export_model, mxnet {mx.__version__}")

    def import_native(self, path):
        try:
            saved = nd.load(str(path))
            weight, bias = saved["weight"], saved["bias"]
            if weight.shape[0] != 1 or bias.shape != (1,):
                raise ValueError(f"weight {weight.shape}, bias {bias.shape}")
        except (mx.MXNetError, KeyError, TypeError, ValueError) as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DlportError(
                f"{path} is not an MXNet Dense(1) parameter file ({detail})"
            ) from None
        w = weight.asnumpy().astype(np.float64).reshape(-1)
        return w, float(bias.asnumpy().astype(np.float64)[0])


def lstsq(X: np.ndarray, y: np.ndarray, ctx: mx.Context) -> np.ndarray:
    """Least squares by an LQ factorisation of X^T (Householder QR of X, in effect).

    mxnet 1.9.1's ``mx.np.linalg.lstsq`` is NumPy's own function re-exported
    (``mxnet/numpy/fallback_linalg.py``), not an MXNet operator, so this uses MXNet's LAPACK
    operators: ``gelqf`` gives X^T = L Q (Q with orthonormal rows), then X c = y becomes
    L^T c = Q y, one triangular solve (``trsm``). Backward stable, error ~ cond(X) * eps: on
    diabetes 7e-16 (float64) and 3e-7 (float32) from numpy.linalg.lstsq (SVD). Normal
    equations with ``potrf`` would square cond(X). No rank cutoff of its own: common.solve
    refused any design under the one cutoff before this runs.
    """
    dtype = X.dtype
    Xt = nd.array(np.ascontiguousarray(X.T), ctx=ctx, dtype=dtype)
    Q, L = nd.linalg.gelqf(Xt)
    rhs = nd.dot(Q, nd.array(y.reshape(-1, 1), ctx=ctx, dtype=dtype))
    coef = nd.linalg.trsm(L, rhs, transpose=True, lower=True)
    return coef.asnumpy().reshape(-1)


# kvstore keys of dlport's own sums; gluon.Trainer numbers the parameters from 0.
_LOSS_KEY, _GRAM_KEY = 1000, 1001


class WorkerSum:
    """Sums of a value over the workers under one kvstore key: pushed to the server (which
    sums the pushes, and keeps the sum: it has no updater), pulled back."""

    def __init__(self, kvstore, key: int, like: nd.NDArray):
        self.kvstore, self.key = kvstore, key
        kvstore.init(key, nd.zeros_like(like))

    def __call__(self, value: nd.NDArray) -> np.ndarray:
        self.kvstore.push(self.key, value)
        self.kvstore.pull(self.key, out=value)
        return value.asnumpy()


def clip_global_norm(grads: list, limit: float) -> None:
    """Scale ``grads`` in place by min(1, limit / (norm + 1e-8)), their global norm: the formula
    of ``gluon.utils.clip_global_norm``, which itself fails on float64 gradients (it concatenates
    the scale with a float32 one: "Non-uniform data type in Concat"). On the device, no sync."""
    norm = nd.sqrt(nd.add_n(*[nd.sum(nd.square(g)) for g in grads]))
    scale = nd.minimum(limit / (norm + 1e-8), nd.ones_like(norm))
    for g in grads:
        g *= scale


class MXNetRunner:
    kvstore = None

    def __init__(
        self,
        X,
        y,
        w0,
        b0,
        config: TrainConfig,
        ctx: mx.Context,
        *,
        hybridize: bool,
        schedule: Schedule | None = None,
    ):
        dtype = config.dtype
        self.ctx, self.dtype = ctx, dtype
        self.batch_size = config.batch_size_for(len(y))
        if schedule is None:  # the config's own (only a constant rate in callers without one)
            schedule = Schedule.for_rows(config, len(y))
        self.set_data(X, y)
        # Through the origin (not fit_intercept): no bias parameter at all, only the weight.
        self.net = make_dense(w0, b0, dtype, ctx, use_bias=config.fit_intercept)
        self.net.collect_params(".*bias").setattr("wd_mult", 0.0)  # the bias is never decayed
        self.loss_fn = make_loss(config)
        self.model = BatchLoss(self.net, self.loss_fn)
        if hybridize:
            # static_shape re-plans when the tail batch's shape differs (twice per epoch).
            self.model.hybridize(static_alloc=True, static_shape=True)
        self.scheduler = make_scheduler(schedule)
        params = self.net.collect_params()
        self.trainer = make_trainer(params, config, self.kvstore, self.scheduler)
        self.clip_norm = config.clip_norm
        self.grads = [param.grad(ctx) for param in self.trainer._params]

    def set_data(self, X, y) -> None:
        ctx, dtype, bs = self.ctx, self.dtype, self.batch_size
        self.X = nd.array(X, ctx=ctx, dtype=dtype)
        self.y = nd.array(y.reshape(-1, 1), ctx=ctx, dtype=dtype)
        if getattr(self, "n", None) == len(y):
            return
        # Each epoch's shuffled copy of the data is gathered into these buffers; the batches are
        # fixed views of them, made once (slicing per step costs more than the step's math).
        n = self.n = len(y)
        self.X_epoch = nd.empty(self.X.shape, ctx=ctx, dtype=dtype)
        self.y_epoch = nd.empty(self.y.shape, ctx=ctx, dtype=dtype)
        self.batches = [
            (self.X_epoch[i : i + bs], self.y_epoch[i : i + bs], min(bs, n - i))
            for i in range(0, n, bs)
        ]

    def run_epoch(self, order: np.ndarray) -> float:
        if len(order) != self.n:
            raise ValueError(f"an epoch visits all {self.n} samples, got {len(order)} indices")
        idx = nd.array(order, ctx=self.ctx, dtype="int64")
        nd.take(self.X, idx, out=self.X_epoch)
        nd.take(self.y, idx, out=self.y_epoch)
        model, trainer, sums, total = self.model, self.trainer, [], None
        for xb, yb, m in self.batches:
            with autograd.record():
                loss = model(xb, yb)
            loss.backward()
            if self.clip_norm is None:
                trainer.step(m)
            else:  # Trainer.step is allreduce_grads + update: clip the summed grads between
                trainer.allreduce_grads()
                clip_global_norm(self.grads, self.clip_norm * m)
                trainer.update(m)
            sums.append(loss)
            if len(sums) == _SUM_EVERY:  # bound the list on long epochs: one add_n per chunk
                total = nd.add_n(*sums) if total is None else nd.add_n(total, *sums)
                sums = []
        if sums:
            total = nd.add_n(*sums) if total is None else nd.add_n(total, *sums)
        return float(total.asscalar()) / len(order)  # the epoch's one host sync

    def params(self):
        w = self.net.weight.data().asnumpy().reshape(-1).astype(np.float64)
        bias = self.net.bias
        return w, 0.0 if bias is None else float(bias.data().asnumpy()[0])

    def learning_rate(self) -> float:
        """The next update's rate (num_update + 1), as its update operator gets it: a C float."""
        optimizer = self.trainer.optimizer
        if self.scheduler is None:
            return float(np.float32(optimizer.learning_rate))
        # Asking ahead changes nothing: the next update asks the scheduler the same.
        return float(np.float32(self.scheduler(optimizer.num_update + 1)))

    # -- checkpoints: the optimizer's slots and update counts, per parameter ------------------
    def _updater(self):
        # One context, one Updater. Its states are what Trainer.save_states writes, as a pickle.
        return self.trainer._updaters[0]

    def _names(self) -> list[str]:
        # In the order gluon.Trainer numbers them (its updater's state keys): it sorts the
        # parameter names, so "dense0_bias" is 0 and "dense0_weight" is 1 (0 without a bias).
        return [param.name[len(self.net.prefix) :] for param in self.trainer._params]

    def optimizer_state(self) -> dict:
        """Slots and update counts per parameter. The updater makes a slot at its parameter's
        first update; before that, the zeros it will start from (the optimizer's create_state),
        so that a fresh runner shows what a checkpoint holds."""
        states, optimizer = self._updater().states, self.trainer.optimizer
        counts, slots = optimizer._index_update_count, {}
        for i, name in enumerate(self._names()):
            if i in states:
                state = states[i]
            else:
                state = optimizer.create_state_multi_precision(i, self.trainer._params[i].data())
            state = [] if state is None else state if isinstance(state, (tuple, list)) else [state]
            slots[name] = [s.asnumpy() for s in state]
        saved = {
            "slots": slots,
            "updates": {n: counts.get(i, 0) for i, n in enumerate(self._names())},
        }
        if self.scheduler is not None:  # (a constant rate keeps the state it always had)
            s = self.scheduler
            saved["scheduler"] = {k: getattr(s, k) for k in _SCHEDULER_POSITION if hasattr(s, k)}
        return saved

    def load_optimizer_state(self, state: dict) -> None:
        # The update counts (num_update: the scheduler's step) and the scheduler's own fields.
        updater, optimizer = self._updater(), self.trainer.optimizer
        counts = optimizer._all_index_update_counts.setdefault(self.ctx.device_id, {})
        for i, name in enumerate(self._names()):
            arrays = [nd.array(a, ctx=self.ctx, dtype=self.X.dtype) for a in state["slots"][name]]
            if arrays:  # else the optimizer keeps no state (plain sgd), made again on first use
                updater.states[i] = arrays[0] if len(arrays) == 1 else tuple(arrays)
                updater.states_synced[i] = True
            counts[i] = int(state["updates"][name])
            optimizer.num_update = max(optimizer.num_update, counts[i])
        optimizer._index_update_count = counts
        for key, value in state.get("scheduler", {}).items():
            setattr(self.scheduler, key, value)


class DistributedRunner(MXNetRunner):
    """``dist_sync`` kvstore: each worker's backward sums the loss's gradient over its shard,
    ``Trainer.step`` pushes it to the server, pulls back the sum over the workers and scales it
    by 1/(global batch rows): the global batch's mean-loss gradient, the same update on every
    worker (and the same scheduled rate: each worker's optimizer counts the same updates)."""

    def __init__(self, X, y, w0, b0, config, ctx, *, hybridize: bool, schedule, kvstore):
        self.kvstore = kvstore
        super().__init__(X, y, w0, b0, config, ctx, hybridize=hybridize, schedule=schedule)
        self.rank, self.world = kvstore.rank, kvstore.num_workers
        self.loss_sum = WorkerSum(kvstore, _LOSS_KEY, nd.zeros((1,), dtype="float64"))
        # Gluon's broadcast of the initial weights went through the server (float32): the same
        # values are on every worker already, so take them back unrounded.
        set_dense(self.net, w0, b0)

    def run_epoch(self, order: np.ndarray) -> float:
        rows, shard_sizes, batch_sizes = epoch_shards(order, self.batch_size, self.rank, self.world)
        idx = nd.array(rows, ctx=self.ctx, dtype="int64")
        X, y = nd.take(self.X, idx), nd.take(self.y, idx)
        total, start = nd.zeros((1,), ctx=self.ctx, dtype="float64"), 0
        for size, m in zip(shard_sizes, batch_sizes, strict=True):
            if size:
                with autograd.record():
                    loss = self.model(X[start : start + size], y[start : start + size])
                loss.backward()
                total += loss.astype("float64")
            else:  # no rows of this batch here: zeros to the sum, as MXNet has no empty batch
                for grad in self.grads:
                    grad[:] = 0
            start += size
            if self.clip_norm is None:
                self.trainer.step(m)
            else:  # the summed gradient, clipped before the update: the global norm
                self.trainer.allreduce_grads()
                clip_global_norm(self.grads, self.clip_norm * m)
                self.trainer.update(m)
        return float(self.loss_sum(total)[0]) / len(order)
