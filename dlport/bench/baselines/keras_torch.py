"""Keras' ``model.fit`` on its torch backend: the tensorflow baseline's code, Keras on torch."""

from __future__ import annotations

from dlport.frameworks.keras import use_backend

use_backend("torch", "keras-torch")

from dlport.bench.baselines.tensorflow import idiomatic_fit  # noqa: E402

__all__ = ["idiomatic_fit"]
