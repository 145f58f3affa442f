"""The run shared by every framework: standardize, seed, batch, check, un-standardize, score.

A framework supplies only what is its own: devices, an ``EpochRunner`` built from its layer,
loss and optimizer, its least-squares routine and its forward pass.
"""

from __future__ import annotations

import functools
import math
import platform
import time
from collections.abc import Iterable
from typing import Any, ClassVar, Protocol

import numpy as np

import dlport
from dlport.common.atomic import write_bytes_atomic
from dlport.common.batching import steps_per_epoch
from dlport.common.callbacks import Callback, CallbackList, TrainingRun
from dlport.common.checkpoint import Checkpoint, check_optimizer_state, check_resumable
from dlport.common.config import TrainConfig
from dlport.common.conventions import CANONICAL, Conventions
from dlport.common.data import Dataset
from dlport.common.errors import DivergenceError, DlportError
from dlport.common.feeds import MemoryFeed, StreamFeed, standardized_block
from dlport.common.init import initial_params
from dlport.common.onnx_model import Exported, finish, reference_graph
from dlport.common.parallel import Service, WorkerGroup, check_divisible
from dlport.common.registry import FRAMEWORKS, data_parallel_names
from dlport.common.results import TrainResult
from dlport.common.schedules import Schedule
from dlport.common.solve import Gram, scaled_design, streamed_qr_solve
from dlport.common.stream import StreamedDataset
from dlport.common.validation import EarlyStopping, Validation, split_validation


class EpochRunner(Protocol):
    def run_epoch(self, order: np.ndarray) -> float:
        """Train one epoch over ``order`` (sample indices); return the epoch's mean batch loss."""

    def params(self) -> tuple[np.ndarray, float]:
        """Current weight vector and bias as float64 NumPy values."""

    def optimizer_state(self) -> dict:
        """The optimizer's own state (slots, step count) as NumPy arrays and numbers; before the
        first step, the zero slots the optimizer starts from (resume checks against it)."""

    def load_optimizer_state(self, state: dict) -> None:
        """Restore what ``optimizer_state`` returned, so training continues bit for bit."""

    def set_data(self, X: np.ndarray, y: np.ndarray) -> None:
        """Train on these rows from now on (streamed data: each chunk in turn)."""

    def learning_rate(self) -> float:
        """The rate the next step will use, read from the framework's own scheduler (or
        optimizer): what the conformance suite holds to ``Schedule.rate`` at every step."""


def with_intercept(X: np.ndarray, fit: bool = True) -> np.ndarray:
    """[X, 1]: the least-squares design matrix whose last coefficient is the bias; [X, 0]
    through the origin (an all-zero column, which the solver leaves out: bias 0)."""
    return np.hstack([X, np.full((X.shape[0], 1), float(fit), dtype=X.dtype)])


class TrainerBase:
    name: ClassVar[str]
    conventions: ClassVar[Conventions] = CANONICAL
    native_suffix: ClassVar[str | None] = None  # file suffix of export_native's format

    # -- what each framework provides -------------------------------------------------------
    def version(self) -> str:
        raise NotImplementedError

    def devices(self) -> list[str]:
        raise NotImplementedError

    def _runner(self, X, y, w0, b0, config: TrainConfig, device: str, schedule: Schedule):
        """An ``EpochRunner`` stepping with the framework's layer, loss and optimizer at
        ``schedule``'s learning rate (its own scheduler, unless ``schedule.constant``)."""
        raise NotImplementedError

    def _streamed_runner(self, X, y, w0, b0, config, device, schedule) -> EpochRunner:
        """The runner for streamed data, whose ``set_data`` takes each chunk in turn; by
        default the in-memory one."""
        return self._runner(X, y, w0, b0, config, device, schedule)

    def _solve_exact(self, X: np.ndarray, y: np.ndarray, device: str) -> np.ndarray:
        """Least-squares coefficients of ``X``: the intercept column included, columns of unit
        norm, and of full rank under ``solve.rank_cutoff`` (common.solve checked it)."""
        raise NotImplementedError

    def _gram(self, X: np.ndarray, y: np.ndarray, device: str):
        """A block's [X 1 y]^T [X 1 y] by the framework's ops, in float64 whatever ``X``'s
        dtype: the normal equations' parts (``Gram.add``) in one matrix product."""
        raise NotImplementedError

    def _solve_gram(self, A: np.ndarray, b: np.ndarray, device: str) -> np.ndarray:
        """Solve A c = b (A symmetric positive definite, float64) by the framework's ops."""
        raise NotImplementedError

    def _predict(self, X: np.ndarray, w: np.ndarray, b: float, device: str) -> np.ndarray:
        raise NotImplementedError

    # -- data-parallel, where the registry says so (docs/design.md, "Data-parallel training") --
    def worker_plan(self, world: int, ports: list[int]) -> tuple[list[dict], list[Service]]:
        """A local run of ``world`` workers: each worker's env, and the engine's services
        (``ports[0]`` is the coordinator's, ``ports[1:]`` one per worker)."""
        return [{} for _ in range(world)], []

    def _join(self, group: WorkerGroup, device: str) -> None:
        """Join the engine's group, first thing (``device`` as requested: auto, cpu, gpu);
        ``_leave`` after the run."""
        raise NotImplementedError

    def _leave(self, group: WorkerGroup, finished: bool) -> None:
        """Leave the engine's group after the run. ``finished``: this rank's run ended
        normally, so it may wait for its peers (a failed rank is not waited for: the launcher
        stops the others)."""

    def _parallel_runner(
        self, X, y, w0, b0, config, device, schedule, group: WorkerGroup
    ) -> EpochRunner:
        """A runner whose epochs step on this worker's shards, the engine summing gradients."""
        raise NotImplementedError

    def _all_reduce_sum(self, values: np.ndarray, device: str) -> np.ndarray:
        """The element-wise sum of ``values`` (float64) over the workers, by the engine."""
        raise NotImplementedError

    def _extra_versions(self) -> dict[str, str]:
        return {}

    def export_native(
        self, weights: np.ndarray, bias: float, path: str, dtype: str = "float64"
    ) -> None:
        """Save the linear model (original units) in the framework's own format, stored and
        computed in ``dtype`` (the training dtype: a float32 run loads into a default layer)."""
        raise DlportError(f"{self.name} has no native model format")

    def import_native(self, path: str) -> tuple[np.ndarray, float]:
        """Read back what ``export_native`` wrote: (weights, bias)."""
        raise DlportError(f"{self.name} has no native model format")

    def log_mlflow_model(
        self, weights: np.ndarray, bias: float, dtype: str, feature_names: list[str]
    ) -> None:
        """Log the model to the active MLflow run in MLflow's flavour for this framework; where
        MLflow has none, a pyfunc that predicts with this framework (``dlport.tracking``)."""
        from dlport.tracking import log_pyfunc_model

        log_pyfunc_model(self.name, weights, bias, dtype, feature_names)

    # Why a framework without an ONNX exporter that works here builds the reference graph.
    onnx_fallback: ClassVar[str] = "it has no ONNX exporter of its own"

    def onnx_model(self, weights: np.ndarray, bias: float, dtype: str) -> Exported:
        """The model as an ONNX graph in ``dtype``, by the framework's own exporter; where it
        has none that works here, built with ``onnx.helper`` from the weights, saying why."""
        return self.onnx_reference(weights, bias, dtype, self.onnx_fallback)

    @staticmethod
    def onnx_reference(weights: np.ndarray, bias: float, dtype: str, why: str) -> Exported:
        """The ``onnx.helper`` graph, with ``why`` the framework's exporter was not used."""
        return Exported(reference_graph(weights, bias, dtype), f"onnx.helper, as {why}")

    def export_onnx(
        self, weights: np.ndarray, bias: float, path: str, dtype: str, feature_names: list[str]
    ) -> str:
        """Write the model as an ONNX file (feature order in its metadata); return how it was
        made."""
        exported = self.onnx_model(np.asarray(weights, dtype=np.float64), float(bias), dtype)
        write_bytes_atomic(path, finish(exported, feature_names, self.name, dtype))
        return exported.exporter

    # -- shared --------------------------------------------------------------------------------
    def resolve_device(self, requested: str) -> str:
        available = self.devices()
        if requested == "auto":
            return "gpu" if "gpu" in available else "cpu"
        if requested not in available:
            raise DlportError(
                f"--device {requested}: {self.name} {self.version()} sees no GPU here "
                f"(devices: {', '.join(available)}); use --device cpu or --device auto"
            )
        return requested

    def predict(self, weights, bias, X, *, dtype: str = "float64", device: str = "auto"):
        weights = np.asarray(weights, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != weights.shape[0]:
            raise DlportError(
                f"data has {X.shape[1] if X.ndim == 2 else '?'} features but the model has "
                f"{weights.shape[0]}; predict on data with the training features"
            )
        out = self._predict(
            np.array(X, dtype=dtype, order="C"),  # a writable C-order copy, as training has
            weights.astype(dtype),
            float(bias),
            self.resolve_device(device),
        )
        return np.asarray(out, dtype=np.float64).reshape(-1)

    def fit(
        self,
        data: Dataset | StreamedDataset,
        config: TrainConfig | None = None,
        *,
        callbacks: Iterable[Callback] = (),
        resume: Checkpoint | None = None,
        group: WorkerGroup | None = None,
    ) -> TrainResult:
        """Train on ``data`` (a ``Dataset``: ``load_dataset(...)`` or ``Dataset.from_arrays(X,
        y)``; or the ``StreamedDataset`` that ``load_dataset`` gives for data past its
        ``max_memory``) with ``config`` (default ``TrainConfig()``); ``callbacks``
        (``ProgressBar``, ``Checkpointing``, ``StopWhen``, ...) see every epoch and may end the
        run early; ``resume`` continues a checkpoint; ``group`` makes this process one worker of
        a data-parallel run (``dlport train --workers N`` starts them)."""
        if not isinstance(data, (Dataset, StreamedDataset)):
            raise DlportError(
                f"fit takes a Dataset, got {type(data).__name__}; pass "
                "dlport.Dataset.from_arrays(X, y) or dlport.load_dataset(path), or use "
                "dlport.sklearn.DlportRegressor for fit(X, y)"
            )
        config = TrainConfig() if config is None else config
        if not isinstance(config, TrainConfig):
            raise DlportError(
                f"fit's config must be a TrainConfig, got {type(config).__name__}; "
                "pass dlport.TrainConfig(...)"
            )
        group = self._check_group(group, data, config)
        if group is None:
            return self._fit(data, config, callbacks, resume, None)
        self._join(group, config.device)  # before the framework looks at its devices (JAX)
        finished = False
        try:
            result = self._fit(data, config, callbacks, resume, group)
            finished = True
            return result
        finally:
            self._leave(group, finished)

    def _fit(self, data, config: TrainConfig, callbacks, resume, group) -> TrainResult:
        device = self.resolve_device(config.device)
        held_out = None
        if config.validation:
            if isinstance(data, StreamedDataset):
                raise DlportError(
                    "--validation: data past --max-memory is not split yet; raise --max-memory "
                    "or hold out rows in a file of their own"
                )
            data, held_out = split_validation(data, config.validation, config.seed)
        if resume is not None:  # the exact solver's too: it has nothing to resume, say so
            check_resumable(resume, self.name, config, data)
        n = data.n_samples
        feed = (StreamFeed if isinstance(data, StreamedDataset) else MemoryFeed)(data, config)
        scaler = feed.standardizer
        batch = config.batch_size_for(n)
        saved = resume.payload["history"] if resume is not None else {}
        run = TrainingRun(
            self,
            config,
            data,
            scaler,
            resume,
            history=list(saved.get("loss", [])),
            device=device,
            val_history=list(saved.get("val_loss", [])),
        )
        validation = None
        if held_out is not None:
            validation = Validation(
                held_out, lambda X, y: standardized_block(scaler, X, y, config, data.source)
            )
            own = [validation]
            if config.early_stopping:
                own.append(EarlyStopping(config.early_stopping, config.restore_best))
            callbacks = [*own, *callbacks]
        callbacks = CallbackList(callbacks)
        start = time.perf_counter()
        try:
            callbacks.on_train_begin(run)
            if config.solver == "exact":
                coef = self._exact(feed, list(data.feature_names), config.dtype, device, group)
                w, b, runner, first_epoch = coef[:-1], float(coef[-1]), None, 0.0
            else:
                runner, first_epoch = self._descend(run, callbacks, feed, device, start, group)
                w, b = runner.params()
            callbacks.on_train_end(run, w, b, runner)
        finally:
            callbacks.close(run)
        if config.restore_best and run.best is not None:
            w, b = run.best.weights, run.best.bias
        history = run.history
        first = resume.epoch if resume is not None else 0
        fit_seconds = time.perf_counter() - start
        w = np.asarray(w, dtype=np.float64).reshape(-1)
        if not (np.isfinite(w).all() and math.isfinite(b)):
            raise DivergenceError(_divergence(config.epochs, float("nan"), config))
        weights, bias = scaler.to_original(w, b)
        return TrainResult(
            framework=self.name,
            framework_version=self.version(),
            device=device,
            dtype=config.dtype,
            config=config.to_dict(),
            conventions=self.conventions.to_dict(),
            data={
                "source": data.source,
                "n_samples": n,
                "n_features": data.n_features,
                "feature_names": list(data.feature_names),
                "target": data.target_name,
                **feed.describe(),
                **({"validation_rows": held_out.n_samples} if held_out else {}),
            },
            weights=weights.tolist(),
            bias=bias,
            history={"loss": history} | ({"val_loss": run.val_history} if validation else {}),
            metrics=feed.metrics(weights, bias)
            | (validation.scores(weights, bias) if validation else {}),
            timing=_timing(fit_seconds, first_epoch, len(history) - first, config, n, batch)
            | ({"workers": group.world} if group else {}),
            standardization=scaler.to_dict(),
            versions={
                "dlport": dlport.__version__,
                "python": platform.python_version(),
                "numpy": np.__version__,
                self.name: self.version(),
                **self._extra_versions(),
            },
        )

    @property
    def data_parallel(self) -> bool:
        """Whether it trains with ``fit(..., group=...)`` (``--workers N``) on its own engine."""
        entry = FRAMEWORKS.get(self.name)
        return entry is not None and entry.data_parallel

    def check_data_parallel(self) -> None:
        if not self.data_parallel:
            raise DlportError(
                f"{self.name} has no data-parallel engine in dlport; --workers needs one of: "
                f"{', '.join(data_parallel_names())}"
            )

    def _check_group(self, group, data, config: TrainConfig) -> WorkerGroup | None:
        """The group to train in (None for one process), or a one-line refusal."""
        if group is None or group.world == 1:
            return None
        self.check_data_parallel()
        if isinstance(data, StreamedDataset):
            raise DlportError(
                "--workers: data past --max-memory is not streamed data-parallel yet; raise "
                "--max-memory, or train it in one process"
            )
        if data.n_samples < group.world:
            raise DlportError(
                f"--workers {group.world} is more than the data's {data.n_samples} rows; "
                "use fewer workers"
            )
        if config.solver == "gd":
            check_divisible(config.batch_size_for(data.n_samples), group.world)
        return group

    def _exact(self, feed, names: list[str], dtype: str, device: str, group=None) -> np.ndarray:
        """Least squares by the normal equations, accumulated in one pass of the framework's
        ops (each worker its contiguous part of the rows, summed by the engine); the QR route
        where they would lose digits (docs/design.md, "Exact solver")."""
        gram = Gram()
        for X, y in feed.blocks() if group is None else feed.blocks(group):
            gram.add(self._gram(X, y, device), rows=len(y))
        if group is not None:
            gram.all_reduce(lambda values: self._all_reduce_sum(values, device))
        if not feed.config.fit_intercept:
            gram.drop_intercept()
        coef = gram.solve(names, dtype, lambda A, b: self._solve_gram(A, b, device))
        if coef is not None:
            return coef
        if isinstance(feed, StreamFeed):
            return streamed_qr_solve(feed.blocks(), gram, names, dtype)
        design = scaled_design(with_intercept(feed.X, feed.config.fit_intercept), names, dtype)
        return design.coefficients(self._solve_exact(design.matrix, feed.y, device))

    def _descend(self, run: TrainingRun, callbacks, feed, device, start, group=None):
        """Gradient descent from the initial values (or the resumed ones) to ``config.epochs``,
        unless a callback stops it; returns the runner and the first epoch's wall time (it
        holds any compilation). Ctrl-C goes to the callbacks (a checkpoint saves the last
        complete epoch) and on."""
        config = run.config
        w0, b0 = initial_params(run.data.n_features, config.seed)
        b0 = b0 if config.fit_intercept else 0.0
        first = 0
        if run.resume is not None:
            w0, b0 = run.resume.train_params
            first = run.resume.epoch
        make = self._streamed_runner if isinstance(feed, StreamFeed) else self._runner
        if group is not None:
            make = functools.partial(self._parallel_runner, group=group)
        n = run.data.n_samples
        schedule = Schedule.for_rows(config, n)
        runner = make(*feed.runner_arrays(), w0.astype(config.dtype), b0, config, device, schedule)
        if run.resume is not None:
            # A fresh runner's state shows the slots this run keeps: the saved one must match.
            state, label = run.resume.optimizer_state, f"{self.name} {config.optimizer}"
            check_optimizer_state(state, runner.optimizer_state(), label)
            runner.load_optimizer_state(state)
        first_epoch = 0.0
        try:
            for epoch in range(first, first if run.stop else config.epochs):
                loss = float(feed.run_epoch(runner, epoch))
                if not math.isfinite(loss):
                    raise DivergenceError(_divergence(epoch + 1, loss, config))
                run.history.append(loss)
                if epoch == first:
                    first_epoch = time.perf_counter() - start
                callbacks.on_epoch_end(run, epoch + 1, runner)
                if run.stop:
                    break
        except KeyboardInterrupt:
            callbacks.on_interrupt(run)
            raise
        return runner, first_epoch


def _divergence(epoch: int, loss: float, config: TrainConfig) -> str:
    hint = "keep standardization on" if not config.standardize else "try a smaller --lr"
    return (
        f"training diverged at epoch {epoch} (loss is {loss}) with --lr {config.lr:g}; "
        f"{hint}, or use --solver exact"
    )


def _timing(fit_seconds, first_epoch, epochs_run: int, config: TrainConfig, n: int, batch: int):
    if config.solver == "exact":
        return {"fit_seconds": fit_seconds, "steps": 0}
    per_epoch = steps_per_epoch(n, batch)
    timing: dict[str, Any] = {
        "fit_seconds": fit_seconds,
        "first_epoch_seconds": first_epoch,
        "steps": per_epoch * epochs_run,
    }
    # Steady state excludes the first epoch, which holds any compilation.
    steady = fit_seconds - first_epoch
    if epochs_run > 1 and steady > 0:
        timing["steps_per_second"] = per_epoch * (epochs_run - 1) / steady
        timing["samples_per_second"] = n * (epochs_run - 1) / steady
    return timing
