"""Seeded batch order, made with NumPy alone: every framework consumes these same indices.

Orders come from ``Generator.permutation`` on PCG64, which gives the same orders on numpy
1.23.5 (the MXNet env) and 2.x (checked, and pinned by a test that runs in both); it is ten
times faster than an argsort of random keys (1 ms against 10 ms for n=100k).
"""

from __future__ import annotations

import numpy as np

_BATCH_STREAM = 1


def epoch_order(n: int, seed: int, epoch: int, batch_size: int) -> np.ndarray:
    """Sample indices for one epoch; full batch keeps the natural order (no shuffling needed)."""
    if batch_size >= n:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng([seed, _BATCH_STREAM, epoch])
    return rng.permutation(n).astype(np.int64)


def split_batches(order: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(full batches as a (steps, batch_size) array, the last partial batch, possibly empty)."""
    steps = len(order) // batch_size
    return order[: steps * batch_size].reshape(steps, batch_size), order[steps * batch_size :]


def iter_batches(order: np.ndarray, batch_size: int):
    """Batch index arrays in training order, the partial one last."""
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def steps_per_epoch(n: int, batch_size: int) -> int:
    return -(-n // batch_size)
