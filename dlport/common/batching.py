"""Seeded batch order, made with NumPy alone: every framework consumes these same indices.

Orders come from ``Generator.random`` and a stable argsort rather than ``permutation``, so
they are identical on numpy 1.23 (the MXNet env) and 2.x.
"""

from __future__ import annotations

import numpy as np

_BATCH_STREAM = 1


def epoch_order(n: int, seed: int, epoch: int, batch_size: int) -> np.ndarray:
    """Sample indices for one epoch; full batch keeps the natural order (no shuffling needed)."""
    if batch_size >= n:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng([seed, _BATCH_STREAM, epoch])
    return np.argsort(rng.random(n), kind="stable").astype(np.int64)


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
