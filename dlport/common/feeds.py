"""Where training's rows come from: data in memory, standardized into the training dtype once
(``MemoryFeed``), or data larger than memory, a window at a time (``StreamFeed``). Both give the
exact solver its blocks and the epoch loop its epochs, in the orders ``common.batching`` makes.
"""

from __future__ import annotations

import math
from functools import cached_property

import numpy as np

from dlport.common.batching import epoch_order
from dlport.common.config import TrainConfig
from dlport.common.data import Dataset
from dlport.common.errors import DlportError
from dlport.common.metrics import regression_metrics
from dlport.common.parallel import WorkerGroup
from dlport.common.standardize import Standardizer
from dlport.common.stream import StreamedDataset
from dlport.common.threads import ordered_map


class MemoryFeed:
    """Data in memory: standardized into the training dtype once, whole, for gradient descent;
    a block at a time for the exact solver's one pass (no copy of the data)."""

    def __init__(self, data: Dataset, config: TrainConfig):
        self.data, self.config = data, config
        self.standardizer = (
            Standardizer.fit(data.X, data.y, config.fit_intercept)
            if config.standardize
            else Standardizer.identity(data.n_features)
        )
        if config.solver == "gd":
            self.X  # noqa: B018 -- made now: a dtype that cannot hold the data is refused first

    @cached_property
    def _arrays(self):
        return _training_arrays(self.standardizer, self.data, self.config)

    @property
    def X(self) -> np.ndarray:
        return self._arrays[0]

    @property
    def y(self) -> np.ndarray:
        return self._arrays[1]

    def blocks(self, group: WorkerGroup | None = None):
        """Blocks of rows; a worker's contiguous part of them in a data-parallel run."""
        data, made = self.data, "_arrays" in self.__dict__
        first, end = 0, data.n_samples
        if group is not None:
            first, end = (data.n_samples * r // group.world for r in (group.rank, group.rank + 1))
        step = max(1, _GRAM_BYTES // (8 * (data.n_features + 2)))
        for start in range(first, end, step):
            rows = slice(start, min(start + step, end))
            if made:
                yield self.X[rows], self.y[rows]
            else:  # the same arithmetic as _training_arrays, a block at a time
                yield standardized_block(
                    self.standardizer, data.X[rows], data.y[rows], self.config, data.source
                )

    def runner_arrays(self):
        return self.X, self.y

    def run_epoch(self, runner, epoch: int) -> float:
        n, config = self.data.n_samples, self.config
        order = epoch_order(n, config.seed, epoch, config.batch_size_for(n))
        return runner.run_epoch(order)

    def metrics(self, weights, bias) -> dict[str, float]:
        return regression_metrics(self.data.y, self.data.X @ weights + bias)

    def describe(self) -> dict:
        return {}


class StreamFeed:
    """Data larger than memory: read, standardized and trained a window at a time."""

    def __init__(self, data: StreamedDataset, config: TrainConfig):
        self.data, self.config = data, config
        if config.solver == "gd":
            data.check_batch(config.batch_size)
        x, y = data.moments  # the pass that also checks every value
        self.standardizer = (
            Standardizer.from_moments(x, y, config.fit_intercept)
            if config.standardize
            else Standardizer.identity(data.n_features)
        )

    def _to_dtype(self, X, y):
        return standardized_block(self.standardizer, X, y, self.config, self.data.source)

    def blocks(self):
        for X, y in self.data.iter_blocks():
            yield self._to_dtype(X, y)

    def runner_arrays(self):
        """Placeholder rows to build the runner on; each chunk replaces them (``set_data``)."""
        rows, d = self.config.batch_size, self.data.n_features
        return np.zeros((rows, d), dtype=self.config.dtype), np.zeros(rows, self.config.dtype)

    def run_epoch(self, runner, epoch: int) -> float:
        total = 0.0
        chunks = self.data.training_chunks(
            self.standardizer, self._to_dtype, self.config.seed, epoch, self.config.batch_size
        )
        for X, y in chunks:
            runner.set_data(X, y)
            total += runner.run_epoch(np.arange(len(y), dtype=np.int64)) * len(y)
        return total / self.data.n_samples

    def metrics(self, weights, bias) -> dict[str, float]:
        return streamed_metrics(self.data.metric_sums(weights, bias))

    def describe(self) -> dict:
        return {
            "streamed": {
                "max_memory": self.data.max_memory,
                "window_rows": self.data.window_rows,
                "blocks": len(self.data.blocks.block_rows),
            }
        }


# Bytes of a block's float64 [X 1 y] in the exact solver's pass: a framework call per block,
# the block's float64 copy staying in cache for its matrix product (2.2x faster than 64 MB
# blocks for torch on 2M x 64 float32 data).
_GRAM_BYTES = 1 << 23
# Bytes of float64 features standardized at a time: the block's float64 deviations stay in
# the core's cache between the subtraction and the division that casts them.
_BYTES_PER_BLOCK = 1 << 20


def _training_arrays(scaler: Standardizer, data: Dataset, config: TrainConfig):
    """Standardized (or raw) X, y in the run's dtype; refused if the dtype cannot hold them.

    A block of rows at a time (in float64), each block written straight into the training
    dtype: one output array, no float64 copy of the data. The blocks run on threads, each into
    its own rows; a refusal is the first refused block's, as in row order.
    """
    n, d = data.X.shape
    Xs, ys = np.empty((n, d), dtype=config.dtype), np.empty(n, dtype=config.dtype)
    rows_per_block = max(1, _BYTES_PER_BLOCK // (8 * d))

    def standardize(start: int) -> None:
        rows = slice(start, start + rows_per_block)
        standardized_block(
            scaler, data.X[rows], data.y[rows], config, data.source, out=(Xs[rows], ys[rows])
        )

    ordered_map(standardize, range(0, n, rows_per_block))
    return Xs, ys


def standardized_block(scaler: Standardizer, X, y, config: TrainConfig, source: str, out=None):
    """One block standardized in float64 and rounded once to the run's dtype, which must hold
    it; written into ``out`` (two arrays of the block's shape) when given, else returned.

    float64 is standardized in place; float32 is divided straight into the output (the
    float64 quotient rounded as it is stored, as ``astype`` would), with no float64 copy kept.
    """
    if out is None:
        out = np.empty(X.shape, config.dtype), np.empty(y.shape, config.dtype)
    parts = ((X, scaler.x_mean, scaler.x_scale, out[0]), (y, scaler.y_mean, scaler.y_scale, out[1]))
    with np.errstate(over="ignore", invalid="ignore"):
        for values, mean, scale, into in parts:
            if into.dtype == np.float64:
                np.divide(np.subtract(values, mean, out=into), scale, out=into)
            else:
                np.divide(values - mean, scale, out=into, casting="same_kind")
        # min and max see a NaN or an inf (an overflow), and bound |value|.
        low, high = min(out[0].min(), out[1].min()), max(out[0].max(), out[1].max())
    if not (math.isfinite(low) and math.isfinite(high)):
        _refuse_unrepresentable(scaler, X, y, config, source)
    return out


def _refuse_unrepresentable(scaler: Standardizer, X, y, config: TrainConfig, source: str):
    """The block standardized to an inf or NaN: name whether float64 overflowed or the run's
    dtype cannot hold a value, and the fix."""
    with np.errstate(over="ignore", invalid="ignore"):
        xb, yb = scaler.transform(X, y)
        low, high = min(xb.min(), yb.min()), max(xb.max(), yb.max())
    if not (math.isfinite(low) and math.isfinite(high)):
        raise DlportError(f"{source}: values too large to standardize in float64; rescale the data")
    hint = "use --dtype float64" + ("" if config.standardize else " or drop --no-standardize")
    raise DlportError(
        f"{source}: a value of magnitude {max(-low, high):.3g} overflows {config.dtype} "
        f"(max {float(np.finfo(config.dtype).max):.3g}); {hint}"
    )


def streamed_metrics(sums: dict[str, float]) -> dict[str, float]:
    """``regression_metrics`` from the sums a streaming pass collects."""
    n, ss_res, ss_tot = sums["n"], sums["ss_res"], sums["ss_tot"]
    mse = ss_res / n
    r2 = (1.0 if ss_res == 0 else 0.0) if ss_tot == 0 else 1.0 - ss_res / ss_tot
    return {"mse": mse, "rmse": math.sqrt(mse), "mae": sums["sum_abs"] / n, "r2": r2}
