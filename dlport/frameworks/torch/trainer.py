"""PyTorch trainer: ``nn.Linear``, ``nn.MSELoss`` (or ``HuberLoss``, ``L1Loss``), ``torch.optim``
with ``torch.optim.lr_scheduler``, and ``torch.linalg.lstsq``.

Data and each epoch's batch order live on the device; the epoch loss is summed there, so the
host waits once per epoch, not once per step. On a GPU the whole epoch (gather, every step, the
loss sum) is captured once as a CUDA graph and replayed: one launch per epoch instead of some
fifteen kernel launches from Python per step.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import logging
import os
import warnings

# cuBLAS needs this before CUDA starts for deterministic algorithms (no effect on CPU).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn.parallel import DistributedDataParallel  # noqa: E402
from torch.optim import lr_scheduler  # noqa: E402

from dlport.common.atomic import write_bytes_atomic  # noqa: E402
from dlport.common.batching import epoch_shards  # noqa: E402
from dlport.common.config import TrainConfig  # noqa: E402
from dlport.common.conventions import CANONICAL  # noqa: E402
from dlport.common.errors import DlportError  # noqa: E402
from dlport.common.fitting import TrainerBase  # noqa: E402
from dlport.common.losses import parse_loss  # noqa: E402
from dlport.common.onnx_model import INSTALL_HINT, Exported  # noqa: E402
from dlport.common.parallel import WorkerGroup  # noqa: E402
from dlport.common.schedules import Schedule  # noqa: E402
from dlport.common.solve import rank_cutoff  # noqa: E402

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _torch_device(device: str) -> torch.device:
    return torch.device("cuda" if device == "gpu" else "cpu")


def set_precision(cuda: bool, tf32: bool = False) -> None:
    """Deterministic kernels where torch has nondeterministic ones (CUDA's); full float32
    matmuls on GPU (no TF32) unless a speed run asks, as docs/design.md says. On the CPU the
    switch changes none of the kernels dlport runs, and costs 3 s a process (it imports torch's
    compiler)."""
    if cuda:
        torch.use_deterministic_algorithms(True)
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def make_optimizer(params, config: TrainConfig, capturable: bool = False) -> torch.optim.Optimizer:
    """torch.optim's own optimizer; ``weight_decay`` is SGD's and Adam's coupled L2 (wd * w
    joins the gradient) and AdamW's decoupled one (w -= lr * wd * w). ``params`` may be
    tensors or param groups (``decay_groups``)."""
    wd = config.weight_decay
    if config.optimizer in ("adam", "adamw"):
        adam = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
        # capturable: the step count lives on the device, as a CUDA graph needs.
        return adam(
            params,
            lr=config.lr,
            betas=(config.beta1, config.beta2),
            eps=config.eps,
            weight_decay=wd,  # given even when 0: AdamW's default is 1e-2
            capturable=capturable,
        )
    momentum = 0.0 if config.optimizer == "sgd" else config.momentum
    return torch.optim.SGD(
        params,
        lr=config.lr,
        momentum=momentum,
        nesterov=config.optimizer == "nesterov",
        weight_decay=wd,
    )


def decay_groups(model: nn.Linear) -> list[dict]:
    """torch's param groups: the weight at the optimizer's weight_decay, the bias (if the layer
    has one) at none."""
    groups = [{"params": [model.weight]}]
    if model.bias is not None:
        groups.append({"params": [model.bias], "weight_decay": 0.0})
    return groups


def make_loss(config: TrainConfig, reduction: str = "mean") -> nn.Module:
    spec = parse_loss(config.loss)
    if spec.kind == "huber":  # HuberLoss, not SmoothL1Loss (which is huber / delta)
        return nn.HuberLoss(reduction=reduction, delta=spec.delta)
    return (nn.L1Loss if spec.kind == "mae" else nn.MSELoss)(reduction=reduction)


class ScheduledLR:
    """``schedule`` with torch's own schedulers: ``LinearLR`` for the warmup, then ``StepLR``,
    ``CosineAnnealingLR``, ``LambdaLR`` (exponential) or ``ConstantLR``; stepped after every
    update, and switched at the end of the warmup as ``SequentialLR(milestones=[W])`` does.

    Each is positioned at its step by its closed form (``step(epoch)``), not chained as
    ``SequentialLR`` chains them (``step()``): the chained forms multiply the last rate, and
    their rounding compounds, up to 2e-15 (LinearLR, lr=1, 300 warmup steps) and 1.2e-14
    (ExponentialLR) off ``Schedule.rate``. Closed, the decays give its numbers bit for bit and
    LinearLR within 3e-16 relative, and the rate is a function of the step count alone: the
    state a resume needs. ExponentialLR, even closed, raises the per-step gamma G**(1/S) to the
    power s, 4.6e-12 off G**(s/S) at S=1000: LambdaLR computes that.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, schedule: Schedule):
        spec, S, W = schedule.spec, schedule.steps_per_epoch, schedule.warmup_steps
        self.warmup_steps, self.steps = W, 0
        self.warmup = None
        if W:
            self.warmup = lr_scheduler.LinearLR(
                optimizer, start_factor=1 / (W + 1), end_factor=1.0, total_iters=W
            )
        if spec.kind == "step":
            self.decay = lr_scheduler.StepLR(
                optimizer, step_size=schedule.step_every, gamma=spec.gamma
            )
        elif spec.kind == "cosine":
            self.decay = lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=schedule.decay_steps, eta_min=0.0
            )
        elif spec.kind == "exponential":
            self.decay = lr_scheduler.LambdaLR(optimizer, lambda s: spec.gamma ** (s / S))
        else:  # constant after the warmup (LinearLR's own hold is lr * (f + (1 - f)): inexact)
            self.decay = lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
        self.seek(0)  # each constructor set the lr its own way

    def step(self) -> None:
        self.seek(self.steps + 1)

    def seek(self, steps: int) -> None:
        """The rate of update ``steps`` (0-based) into the optimizer."""
        self.steps, W = steps, self.warmup_steps
        scheduler, epoch = (self.decay, steps - W) if steps >= W else (self.warmup, steps)
        with warnings.catch_warnings():
            # step(epoch) warns that it is deprecated, and takes the closed form, as meant
            warnings.simplefilter("ignore", UserWarning)
            scheduler.step(epoch)


def make_linear(
    w0: np.ndarray, b0: float, dtype: torch.dtype, device, bias: bool = True
) -> nn.Linear:
    """``nn.Linear(n, 1)`` holding ``w0`` and ``b0``; ``bias=False``: through the origin, no
    bias parameter at all (``b0`` unused), so the optimizer keeps no slot for it."""
    layer = nn.Linear(len(w0), 1, bias=bias, dtype=dtype, device=device)
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(w0).reshape(1, -1))
        if bias:
            layer.bias.fill_(b0)
    return layer


# Per-step work (batch x features) under which one intra-op thread is fastest on the CPU. On
# 2 cores, 1 thread against torch's default 2: 1.2-1.3x the steps/s at 256 x 16, idle; with
# another process busy, 7.4k vs 63 steps/s at 256 x 16 and 4.2M vs 0.7M samples/s at 8192 x 64
# (the threads spin-wait for a core at every op). Above it, a step's arithmetic pays for them.
ONE_THREAD_BELOW = 1 << 20


def cpu_threads(batch_size: int, features: int, default: int) -> int:
    return 1 if batch_size * features < ONE_THREAD_BELOW else default


@contextlib.contextmanager
def step_threads(batch_size: int, features: int):
    """``cpu_threads`` intra-op threads meanwhile; they are process-wide, so the caller's
    setting comes back after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(cpu_threads(batch_size, features, threads))
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def graphed(config: TrainConfig, device: str) -> bool:
    """Whether the run's epochs replay as a CUDA graph: on a GPU, but not float64 Adam(W), nor
    under an lr schedule.

    Capturable Adam (a graph needs it) computes its bias corrections in its step counter's
    dtype, float32 (load_state_dict casts it there too): 2.1e-6 off the float64 reference on an
    H200. Eager Adam takes them as Python floats, as on the CPU. A scheduler sets each step's
    lr from Python between steps, which a replay would skip (the capture's lrs, baked in).
    """
    float64_adam = config.optimizer in ("adam", "adamw") and config.dtype == "float64"
    scheduled = config.lr_schedule != "constant" or config.warmup_epochs > 0
    return device == "gpu" and not float64_adam and not scheduled


class TorchTrainer(TrainerBase):
    name = "torch"
    native_suffix = ".pt"
    # torch's rules are the canonical ones: SGD's and Adam's weight_decay is coupled.
    conventions = CANONICAL

    def version(self) -> str:
        return torch.__version__

    def devices(self) -> list[str]:
        return ["cpu", "gpu"] if torch.cuda.is_available() else ["cpu"]

    def _runner(self, X, y, w0, b0, config, device, schedule):
        set_precision(device == "gpu", config.tf32)
        runner = CudaGraphRunner if graphed(config, device) else TorchRunner
        return runner(X, y, w0, b0, config, _torch_device(device), schedule)

    def _streamed_runner(self, X, y, w0, b0, config, device, schedule):
        # A CUDA graph replays fixed buffers; streamed chunks come in several sizes: eager.
        set_precision(device == "gpu", config.tf32)
        return TorchRunner(X, y, w0, b0, config, _torch_device(device), schedule)

    def _join(self, group, device):
        # gloo on the CPU, NCCL between GPUs (one each: NCCL refuses two ranks on one GPU);
        # rank 0's TCP store is the rendezvous.
        gpu = self.resolve_device(device) == "gpu"
        if gpu:
            count = torch.cuda.device_count()
            if group.local and count < group.world:
                raise DlportError(
                    f"--workers {group.world} on the GPU needs a GPU each (NCCL refuses two "
                    f"ranks on one) and this machine has {count}; use --device cpu or fewer "
                    "workers"
                )
            torch.cuda.set_device(group.rank % count)
        dist.init_process_group(
            "nccl" if gpu else "gloo",
            init_method=f"tcp://{group.coordinator}",
            rank=group.rank,
            world_size=group.world,
            timeout=datetime.timedelta(seconds=group.timeout),
        )

    def _leave(self, group, finished):
        # Rank 0 hosts the rendezvous store: a rank tearing gloo down while a peer is still in
        # its last collective can abort that peer ("terminate called without an active
        # exception", SIGABRT, seen once in 2-worker CI runs). A finished run meets first.
        if finished:
            dist.barrier()
        dist.destroy_process_group()

    def _parallel_runner(self, X, y, w0, b0, config, device, schedule, group):
        set_precision(device == "gpu", config.tf32)
        return DistributedRunner(X, y, w0, b0, config, _torch_device(device), schedule, group)

    def _all_reduce_sum(self, values, device):
        total = torch.from_numpy(values).to(_torch_device(device))
        dist.all_reduce(total)
        return total.cpu().numpy()

    def _gram(self, X, y, device):
        dev = _torch_device(device)
        A = torch.empty((len(X), X.shape[1] + 2), dtype=torch.float64, device=dev)
        A[:, :-2].copy_(torch.from_numpy(X))
        A[:, -2] = 1.0
        A[:, -1].copy_(torch.from_numpy(y))
        return (A.T @ A).cpu()

    def _solve_gram(self, A, b, device):
        dev = _torch_device(device)
        return torch.linalg.solve(torch.from_numpy(A).to(dev), torch.from_numpy(b).to(dev)).cpu()

    def _solve_exact(self, X, y, device):
        dev = _torch_device(device)
        A, b = torch.from_numpy(X).to(dev), torch.from_numpy(y).to(dev).unsqueeze(1)
        # gelsd (SVD-based, as numpy's lstsq) exists on CPU only; CUDA offers gels (QR, no rank
        # cutoff), safe because common.solve refused any design under the one cutoff.
        if dev.type == "cpu":
            rcond = rank_cutoff(X.dtype, *X.shape)
            solution = torch.linalg.lstsq(A, b, rcond=rcond, driver="gelsd").solution
        else:
            solution = torch.linalg.lstsq(A, b, driver="gels").solution
        return solution.squeeze(1).cpu().numpy()

    def _predict(self, X, w, b, device):
        dev = _torch_device(device)
        layer = make_linear(w, b, _DTYPES[str(X.dtype)], dev)
        with torch.inference_mode():
            return layer(torch.from_numpy(X).to(dev)).squeeze(1).cpu().numpy()

    def export_native(self, weights, bias, path, dtype="float64"):
        # A plain nn.Linear state_dict: torch.load(path, weights_only=True) -> layer.load_state_dict
        layer = make_linear(np.asarray(weights), bias, _DTYPES[dtype], "cpu")
        buffer = io.BytesIO()
        torch.save(layer.state_dict(), buffer)
        write_bytes_atomic(path, buffer.getvalue())

    def onnx_model(self, weights, bias, dtype):
        # torch's own exporter (torch.export, then onnxscript), the rows dimension left free
        layer = make_linear(np.asarray(weights), bias, _DTYPES[dtype], "cpu").eval()
        example = torch.zeros((2, len(weights)), dtype=_DTYPES[dtype])
        exporter_log = logging.getLogger("torch.onnx")
        level = exporter_log.level
        try:
            # its progress lines, the torchvision ops it skips, its own deprecations
            exporter_log.setLevel(logging.ERROR)
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                program = torch.onnx.export(
                    layer,
                    (example,),
                    dynamo=True,
                    input_names=["X"],
                    output_names=["y"],
                    dynamic_shapes=({0: torch.export.Dim("rows")},),
                    verbose=False,
                )
        except ImportError as exc:  # onnxscript
            raise DlportError(f"torch.onnx.export needs {exc.name}: {INSTALL_HINT}") from None
        finally:
            exporter_log.setLevel(level)
        return Exported(program.model_proto, f"torch.onnx.export (dynamo), torch {self.version()}")

    def log_mlflow_model(self, weights, bias, dtype, feature_names):
        import mlflow.pytorch

        from dlport.tracking import model_arguments

        layer = make_linear(np.asarray(weights), bias, _DTYPES[dtype], "cpu").eval()
        # MLflow's default "pt2" format traces the layer with the example: two rows, as one row
        # would be fixed into the graph
        mlflow.pytorch.log_model(
            layer,
            input_example=np.zeros((2, len(weights)), dtype=dtype),
            **model_arguments(self.name, weights, dtype, feature_names),
        )

    def import_native(self, path):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            weight, bias = state["weight"], state["bias"]
        except Exception as exc:  # torch raises many types for a bad file
            raise DlportError(f"{path} is not a torch nn.Linear state_dict ({exc})") from None
        return weight.double().reshape(-1).numpy(), float(bias.double().reshape(-1)[0])


# optimizer_state()'s entry for the scheduler, beside torch's per-parameter ones ("0", "1")
SCHEDULER_KEY = "lr_scheduler"


class TorchRunner:
    capturable = False

    def __init__(self, X, y, w0, b0, config: TrainConfig, device, schedule: Schedule | None = None):
        dtype = _DTYPES[config.dtype]
        self.device, self.config = device, config
        self.set_data(X, y)
        self.model = make_linear(w0, b0, dtype, device, bias=config.fit_intercept)
        self.loss_fn = make_loss(config)
        self.optimizer = make_optimizer(decay_groups(self.model), config, self.capturable)
        # None: a constant lr (or no schedule given), the optimizer's own, as before schedules
        constant = schedule is None or schedule.constant
        self.scheduler = None if constant else ScheduledLR(self.optimizer, schedule)
        self.batch_size = config.batch_size_for(len(y))
        self.clip_norm = config.clip_norm
        self.total = torch.zeros((), dtype=dtype, device=device)

    def set_data(self, X, y) -> None:
        self.X = torch.from_numpy(X).to(self.device)
        self.y = torch.from_numpy(y).to(self.device).unsqueeze(1)

    def run_epoch(self, order: np.ndarray) -> float:
        with step_threads(self.batch_size, self.X.shape[1]):
            self.train_epoch(torch.from_numpy(order).to(self.device))
            return self.total.item() / len(order)

    def train_epoch(self, order: torch.Tensor) -> None:
        """Every step of one epoch over ``order``, the loss total left in ``self.total``."""
        if self.batch_size >= len(order):  # full batch: the natural order, nothing to gather
            X, y = self.X, self.y
        else:  # one gather per epoch; batches are views (cheaper than two gathers per step)
            X, y = self.X.index_select(0, order), self.y.index_select(0, order)
        self.total.zero_()
        for xb, yb in zip(X.split(self.batch_size), y.split(self.batch_size), strict=True):
            loss = self.step(xb, yb)
            self.total.add_(loss.detach(), alpha=len(xb))

    def step(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model(xb), yb)
        loss.backward()
        self.update()
        return loss

    def update(self) -> None:
        """The step from the gradients backward left: clipped, the optimizer's, then the
        scheduler's (torch's order: the rate it sets is the next step's)."""
        if self.clip_norm is not None:  # on the device, no host sync: a CUDA graph captures it
            nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_norm)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()

    def learning_rate(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def optimizer_state(self) -> dict:
        """torch.optim's per-parameter state, and the scheduler's step count (its closed forms
        need no more). torch makes the optimizer's at the first step; before that, the zeros
        it will start from, so that a fresh runner shows what a checkpoint holds."""
        optimizer, fresh = self.optimizer, not self.optimizer.state
        if fresh:  # a twin on zero parameters, stepped once, makes the same slots
            params = [torch.zeros_like(p, requires_grad=True) for p in self.model.parameters()]
            optimizer = make_optimizer(params, self.config, self.capturable)
            for p in params:
                p.grad = torch.zeros_like(p)
            optimizer.step()
        state = {
            str(i): {k: (v.zero_() if fresh else v).detach().cpu().numpy() for k, v in s.items()}
            for i, s in optimizer.state_dict()["state"].items()
        }
        if self.scheduler is not None:
            state[SCHEDULER_KEY] = {"steps": self.scheduler.steps}
        return state

    def load_optimizer_state(self, state: dict) -> None:
        full = self.optimizer.state_dict()  # keeps this run's param_groups (same config)
        full["state"] = {
            int(i): {k: torch.from_numpy(np.asarray(v)) for k, v in s.items()}
            for i, s in state.items()
            if i != SCHEDULER_KEY
        }
        self.optimizer.load_state_dict(full)
        if self.scheduler is not None:  # after the optimizer's: it sets the group's lr
            self.scheduler.seek(int(state[SCHEDULER_KEY]["steps"]))

    def params(self):
        w = self.model.weight.detach().reshape(-1).cpu().numpy().astype(np.float64)
        bias = self.model.bias
        return w, 0.0 if bias is None else float(bias.detach().cpu().item())


def sum_gradients(state, bucket):  # no annotations: DDP checks them, and they are strings here
    """DDP's communication hook summing the workers' gradients (its default averages them):
    each worker's loss is already its share of the global batch's mean."""
    reduced = dist.all_reduce(bucket.buffer(), async_op=True).get_future()
    return reduced.then(lambda fut: fut.value()[0])


class DistributedRunner(TorchRunner):
    """``DistributedDataParallel`` over this worker's shard of every global batch: the loss is
    the shard's losses summed over the global batch's rows, DDP sums the gradients
    during backward, and every worker's optimizer then takes the same step."""

    def __init__(self, X, y, w0, b0, config, device, schedule, group: WorkerGroup):
        super().__init__(X, y, w0, b0, config, device, schedule)
        self.group = group
        self.ddp = DistributedDataParallel(self.model)
        self.ddp.register_comm_hook(None, sum_gradients)
        self.sum_loss = make_loss(config, reduction="sum")

    def run_epoch(self, order: np.ndarray) -> float:
        rows, shard_sizes, batch_sizes = epoch_shards(
            order, self.batch_size, self.group.rank, self.group.world
        )
        index = torch.from_numpy(rows).to(self.device)
        X, y = self.X.index_select(0, index), self.y.index_select(0, index)
        self.total.zero_()
        with step_threads(self.batch_size, self.X.shape[1]):
            for xb, yb, global_rows in zip(
                X.split(shard_sizes), y.split(shard_sizes), batch_sizes, strict=True
            ):
                self.optimizer.zero_grad(set_to_none=True)
                loss = self.sum_loss(self.ddp(xb), yb) / global_rows
                loss.backward()
                self.update()  # clipping the summed gradient: the global norm
                self.total.add_(loss.detach(), alpha=global_rows)
        dist.all_reduce(self.total)  # every shard's losses: the epoch's loss
        return self.total.item() / len(order)


class CudaGraphRunner(TorchRunner):
    """The epoch as one CUDA graph (torch.cuda.graphs' whole-network capture): the order is
    copied into a static buffer, the graph replays the gather, every step and the loss sum.

    Capture needs a few warm-up steps on a side stream first (lazy cuBLAS and optimizer state);
    they are undone, parameters and optimizer state copied back in place, so the run trains
    exactly as the eager loop would.
    """

    capturable = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.order = torch.empty(len(self.y), dtype=torch.int64, device=self.device)
        self.graph: torch.cuda.CUDAGraph | None = None

    def run_epoch(self, order: np.ndarray) -> float:
        self.order.copy_(torch.from_numpy(order))
        if self.graph is None:
            self.graph = self._capture()
        self.graph.replay()
        return self.total.item() / len(order)

    def _capture(self) -> torch.cuda.CUDAGraph:
        params = [p.detach().clone() for p in self.model.parameters()]
        state = {p: {k: v.clone() for k, v in s.items()} for p, s in self.optimizer.state.items()}
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), warnings.catch_warnings():
            # capturable Adam warns when it steps uncaptured: these steps are meant to be
            warnings.simplefilter("ignore", UserWarning)
            batch = self.X[: self.batch_size], self.y[: self.batch_size]
            for _ in range(3):
                self.step(*batch)
        torch.cuda.current_stream().wait_stream(side)
        with torch.no_grad():  # undo the warm-up: a fresh optimizer's state is zeros
            for p, saved in zip(self.model.parameters(), params, strict=True):
                p.copy_(saved)
            for p, slots in self.optimizer.state.items():
                for k, v in slots.items():
                    if isinstance(v, torch.Tensor):
                        v.copy_(state[p][k]) if k in state.get(p, {}) else v.zero_()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.train_epoch(self.order)
        return graph
