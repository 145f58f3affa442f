"""Data larger than memory: a dataset read as blocks of rows, never whole (docs/design.md,
"Data larger than memory").

A ``StreamedDataset`` is what ``load_dataset`` returns when training the data in memory would
pass ``--max-memory``. Its blocks are Parquet row groups, or row ranges of arrays already in
memory (how a test forces streaming on small data). Training reads windows of blocks in the
order of ``batching.stream_windows``, so every framework consumes the same batches.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Protocol

import numpy as np

from dlport.common.batching import stream_windows
from dlport.common.errors import DlportError
from dlport.common.standardize import Moments, Standardizer, refuse_overflow

# What training holds per value of a row held in memory: the float64 values, the standardized
# copy in the training dtype, the framework's copy and an epoch's gathered copy (float64 at
# most: 8 + 3 * 8 bytes).
IN_MEMORY_BYTES_PER_VALUE = 32
# A streamed window is held about this many times over (the raw block, the standardized and
# permuted copies, the framework's copy, its gather) and twice (the next one is read ahead).
WINDOW_COPIES = 12
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([kmgt]?)(i?)b?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``512MB``, ``4GB``, ``1.5GiB``, ``100000`` (bytes) -> bytes."""
    match = _SIZE.match(str(text))
    if not match or float(match.group(1)) <= 0:
        raise DlportError(f"--max-memory {text!r} is not a size; give e.g. 512MB, 4GB or 1.5GiB")
    value, unit, binary = float(match.group(1)), match.group(2).lower(), match.group(3)
    scale = 1024 ** "kmgt".index(unit) * 1024 if binary and unit else _UNITS[unit]
    return int(value * scale)


def format_size(n: int) -> str:
    """Bytes as --max-memory takes them back: 36B, 200KB, 512MB, 4.1GB."""
    for scale, unit in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "KB")):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n}B"


def in_memory_bytes(rows: int, columns: int) -> int:
    """What training ``rows`` x ``columns`` (target included) in memory holds at most."""
    return rows * columns * IN_MEMORY_BYTES_PER_VALUE


def window_rows_for(max_memory: int, columns: int) -> int:
    return max(1, max_memory // (columns * 8 * WINDOW_COPIES))


class BlockSource(Protocol):
    block_rows: tuple[int, ...]

    def read(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        """The block's features (rows, d) and target (rows,) as float64, checked finite."""

    def read_target(self, block: int) -> np.ndarray:
        """The block's target alone (cheap where the format stores columns apart)."""


class ArrayBlocks:
    """Row ranges of arrays in memory: streaming forced on data that is already loaded."""

    def __init__(self, X: np.ndarray, y: np.ndarray, rows_per_block: int):
        self.X, self.y = X, y
        n = len(y)
        self.starts = list(range(0, n, rows_per_block))
        self.block_rows = tuple(min(rows_per_block, n - s) for s in self.starts)

    def read(self, block: int):
        rows = slice(self.starts[block], self.starts[block] + self.block_rows[block])
        return self.X[rows], self.y[rows]

    def read_target(self, block: int) -> np.ndarray:
        return self.read(block)[1]


class ValuesPass:
    """What one pass over a streamed dataset's blocks collects, in file order: the per-column
    moments of X and y merged block by block, and the hash of X's float64 bytes (the first
    part of the fingerprint)."""

    def __init__(self):
        self.x = self.y = Moments(0, np.zeros(0), np.zeros(0))
        self.x_digest = hashlib.sha256()

    def add(self, X: np.ndarray, y: np.ndarray) -> None:
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused after it
            self.x, self.y = self.x.merge(Moments.of(X)), self.y.merge(Moments.of(y))
        self.x_digest.update(np.ascontiguousarray(X).data)


@dataclass(frozen=True, eq=False)
class StreamedDataset:
    """A dataset read a window of blocks at a time (at most ``window_rows`` rows)."""

    blocks: BlockSource
    window_rows: int
    feature_names: tuple[str, ...]
    target_name: str
    source: str
    max_memory: int

    @property
    def n_samples(self) -> int:
        return sum(self.blocks.block_rows)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def batch_order(self) -> str:
        """The order's description a checkpoint keeps: a resume must stream the same way."""
        return (
            f"stream_windows({len(self.blocks.block_rows)} blocks, "
            f"window_rows={self.window_rows}, seed, epoch)"
        )

    def iter_blocks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every block in file order, the next one read while the caller works on this one."""
        return _read_ahead(self.blocks.read, range(len(self.blocks.block_rows)))

    @cached_property
    def _values_pass(self) -> ValuesPass:
        """The pass over every value: the blocks' own where they made one to load (a CSV's),
        else one now."""
        done = getattr(self.blocks, "values_pass", None)
        if done is None:
            done = ValuesPass()
            for Xb, yb in self.iter_blocks():
                done.add(Xb, yb)
        return done

    @cached_property
    def moments(self) -> tuple[Moments, Moments]:
        """Per-column moments of X and y, merged block by block in the pass that also checks
        every value; refused where their float64 sums overflow."""
        x, y = self._values_pass.x, self._values_pass.y
        refuse_overflow(self.source, self.feature_names, x)
        refuse_overflow(self.source, [self.target_name], y)
        return x, y

    def fingerprint(self) -> str:
        """The checkpoint's data fingerprint, equal to the in-memory one of the same values:
        sha256 of X's float64 bytes (hashed in the values' pass), then y's."""
        self.moments  # noqa: B018 -- the checked pass that hashes X
        digest = self._values_pass.x_digest.copy()
        for block in range(len(self.blocks.block_rows)):
            digest.update(np.ascontiguousarray(self.blocks.read_target(block)).data)
        return digest.hexdigest()

    def check_batch(self, batch_size: int | None) -> int:
        if batch_size is None:
            raise DlportError(
                f"{self.source} is streamed (its training would pass --max-memory "
                f"{format_size(self.max_memory)}) and streaming trains in minibatches; give "
                "--batch-size, raise --max-memory, or use --solver exact"
            )
        if batch_size > self.window_rows:
            budget = format_size(self.max_memory)
            raise DlportError(
                f"--batch-size {batch_size} does not fit --max-memory {budget} (a window holds "
                f"{self.window_rows} rows of {self.source}); lower the batch size or raise "
                "--max-memory"
            )
        return batch_size

    def training_chunks(
        self, scaler: Standardizer, to_dtype, seed: int, epoch: int, batch_size: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """One epoch as chunks of whole batches in training order (the partial batch last, on
        its own): each window's rows read, standardized into the training dtype by
        ``to_dtype(X, y)`` and permuted; rows short of a batch carry over to the next window."""
        windows = stream_windows(self.blocks.block_rows, self.window_rows, seed, epoch)

        def prepare(window):
            blocks, perm = window
            parts = [self.blocks.read(b) for b in blocks]
            X = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
            y = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
            Xs, ys = to_dtype(X, y)
            return Xs[perm], ys[perm]

        carry_X = carry_y = None
        for Xs, ys in _read_ahead(prepare, windows):
            if carry_X is not None:
                Xs, ys = np.concatenate([carry_X, Xs]), np.concatenate([carry_y, ys])
            whole = len(ys) - len(ys) % batch_size
            if whole:
                yield Xs[:whole], ys[:whole]
            carry_X, carry_y = Xs[whole:], ys[whole:]
        if carry_y is not None and len(carry_y):
            yield np.ascontiguousarray(carry_X), np.ascontiguousarray(carry_y)

    def metric_sums(self, weights: np.ndarray, bias: float) -> dict[str, float]:
        """Sums the regression metrics need, over every block, in float64."""
        sq = ab = 0.0
        for Xb, yb in self.iter_blocks():
            residual = yb - (Xb @ weights + bias)
            sq += float(residual @ residual)
            ab += float(np.abs(residual).sum())
        y = self.moments[1]
        return {"n": y.count, "ss_res": sq, "sum_abs": ab, "ss_tot": float(y.m2[0])}


def _read_ahead(read, items) -> Iterator:
    """``read(item)`` for each item in order, the next one running in a thread (pyarrow and
    NumPy release the GIL) while the caller works on the current one."""
    items = list(items)
    if not items:
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(read, items[0])
        for following in [*items[1:], None]:
            current = pending.result()
            if following is not None:
                pending = pool.submit(read, following)
            yield current
            del current


def stream_arrays(X: np.ndarray, y: np.ndarray, names, target: str, source: str, max_memory: int):
    """Arrays already in memory, streamed as if they were not (blocks of a quarter window)."""
    window = window_rows_for(max_memory, X.shape[1] + 1)
    blocks = ArrayBlocks(X, y, max(1, window // 4))
    return StreamedDataset(blocks, window, tuple(names), target, source, max_memory)


def parquet_stream(path: Path, target: str | None, max_memory: int) -> StreamedDataset:
    from dlport.common.arrow import ParquetBlocks

    fix = "rewrite the file with smaller row groups (pyarrow: row_group_size)"
    return _blocks_stream(ParquetBlocks(path, target), "a row group", fix, max_memory)


def csv_stream(path: Path, target: str | None, max_memory: int, columns: int) -> StreamedDataset:
    """A plain CSV in byte ranges of at most half a window of rows each."""
    from dlport.common.csv_blocks import CsvBlocks

    blocks = CsvBlocks(path, target, max(1, window_rows_for(max_memory, columns) // 2))
    return _blocks_stream(blocks, "a block", "", max_memory)


def _blocks_stream(blocks, what: str, fix: str, max_memory: int) -> StreamedDataset:
    window = window_rows_for(max_memory, len(blocks.names))
    largest = max(blocks.block_rows)
    if largest > window:
        raise DlportError(
            f"{blocks.path}: {what} has {largest} rows but --max-memory "
            f"{format_size(max_memory)} holds {window} rows at a time; raise --max-memory"
            + (f", or {fix}" if fix else "")
        )
    return StreamedDataset(
        blocks,
        window,
        tuple(blocks.feature_names),
        blocks.target_name,
        str(blocks.path),
        max_memory,
    )


def check_finite(source: str, first_row: int, X: np.ndarray, y: np.ndarray):
    """A block's (X, y), refused where a value is NaN or inf, naming its row in the whole file
    (``first_row``: the block's first)."""
    for values, what in ((X, "features"), (y, "target")):
        bad = ~np.isfinite(values)
        if bad.any():
            row = first_row + int(np.argwhere(bad)[0][0])
            raise DlportError(
                f"{source}: {what} contain NaN or inf (first at data row {row + 1}); "
                "drop or impute those rows"
            )
    return X, y
