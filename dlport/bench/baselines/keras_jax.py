"""Keras' ``model.fit`` on its JAX backend: the tensorflow baseline's code, Keras on jax."""

from __future__ import annotations

from dlport.frameworks.keras import use_backend

use_backend("jax", "keras-jax")

from dlport.bench.baselines.tensorflow import idiomatic_fit  # noqa: E402

__all__ = ["idiomatic_fit"]
