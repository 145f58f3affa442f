"""What the Keras 3 ports share (``parts``), and the choice of Keras' backend.

Keras fixes its backend at its first import, from ``KERAS_BACKEND``; so each Keras port runs in
its own process, and this module, which imports no framework, sets the variable before Keras
loads and refuses a Keras already loaded on another backend.
"""

from __future__ import annotations

import os
import sys

from dlport.common.errors import DlportError


def use_backend(backend: str, framework: str) -> None:
    """Make ``backend`` Keras' backend in this process, before ``keras`` is imported."""
    loaded = sys.modules.get("keras")
    if loaded is not None and loaded.backend.backend() != backend:
        raise DlportError(
            f"{framework} needs Keras on its {backend} backend, but this process already loaded "
            f"Keras on {loaded.backend.backend()} (Keras picks its backend once, at import); "
            f"run it in its own process: `tox -e {framework}`"
        )
    os.environ["KERAS_BACKEND"] = backend
