"""The JAX loop a user writes first: a params pytree, optax.sgd, a jitted train step called
from a Python for-loop over NumPy-shuffled batches (one dispatch and one host-to-device copy
per step)."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax


def idiomatic_fit(X, y, batch_size: int, epochs: int, device: str = "cpu") -> list[float]:
    where = jax.devices("gpu" if device == "gpu" else "cpu")[0]
    optimizer = optax.sgd(0.01)
    params = {"w": jnp.zeros(X.shape[1], X.dtype), "b": jnp.zeros((), X.dtype)}
    params = jax.device_put(params, where)
    opt_state = optimizer.init(params)

    @jax.jit
    def step(params, opt_state, xb, yb):
        def loss(p):
            return jnp.mean((xb @ p["w"] + p["b"] - yb) ** 2)

        grads = jax.grad(loss)(params)
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state

    rng, seconds = np.random.default_rng(0), []
    for _ in range(epochs):
        start = time.perf_counter()
        order = rng.permutation(len(y))
        for first in range(0, len(y), batch_size):
            idx = order[first : first + batch_size]
            xb, yb = jax.device_put((X[idx], y[idx]), where)
            params, opt_state = step(params, opt_state, xb, yb)
        jax.block_until_ready(params)  # dispatch is asynchronous: time the work
        seconds.append(time.perf_counter() - start)
    return seconds
