"""The hand-written NumPy minibatch SGD loop over dlport's batches: the CPU reference ceiling.

No abstraction at all: a gather, one matrix-vector product each way, in-place updates.
"""

from __future__ import annotations

import time

import numpy as np

from dlport.common.batching import epoch_order


def idiomatic_fit(X, y, batch_size: int, epochs: int, lr: float = 0.01) -> list[float]:
    n, d = X.shape
    w = np.zeros(d, dtype=X.dtype)
    b = X.dtype.type(0)
    seconds = []
    for epoch in range(epochs):
        start = time.perf_counter()
        order = epoch_order(n, 0, epoch, batch_size)
        for first in range(0, n, batch_size):
            idx = order[first : first + batch_size]
            xb = X[idx]
            residual = xb @ w + b - y[idx]
            scale = X.dtype.type(lr * 2 / len(idx))
            w -= scale * (residual @ xb)
            b -= scale * residual.sum()
        seconds.append(time.perf_counter() - start)
    return seconds
