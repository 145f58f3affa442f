"""Initial weight and bias from the seed. Every framework loads exactly these values.

uniform(-1/sqrt(d), 1/sqrt(d)) like torch's nn.Linear, drawn with ``Generator.random`` so that
the values are identical across numpy versions.
"""

from __future__ import annotations

import numpy as np

_INIT_STREAM = 2


def initial_params(n_features: int, seed: int) -> tuple[np.ndarray, float]:
    rng = np.random.default_rng([seed, _INIT_STREAM])
    bound = 1.0 / np.sqrt(n_features)
    draws = rng.random(n_features + 1)
    values = bound * (2.0 * draws - 1.0)
    return values[:-1], float(values[-1])
