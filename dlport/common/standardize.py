"""Standardization of features and target, undone on the reported weights."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

_NOISE = 64 * np.finfo(np.float64).eps  # a std this small (relative) is rounding, not data


@dataclass(frozen=True)
class Standardizer:
    x_mean: np.ndarray
    x_scale: np.ndarray
    y_mean: float
    y_scale: float

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray) -> Standardizer:
        # A constant column keeps scale 1: its std is 0, or rounding noise (0.1 repeated has
        # std 1.4e-17), which would blow that noise up to +-1.
        x_mean, y_mean = X.mean(axis=0), float(y.mean())
        x_scale = X.std(axis=0)
        x_scale[x_scale <= _NOISE * np.maximum(1.0, np.abs(x_mean))] = 1.0
        y_scale = float(y.std())
        if y_scale <= _NOISE * max(1.0, abs(y_mean)):
            y_scale = 1.0
        return cls(x_mean, x_scale, y_mean, y_scale)

    @classmethod
    def identity(cls, d: int) -> Standardizer:
        return cls(np.zeros(d), np.ones(d), 0.0, 1.0)

    def transform(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (X - self.x_mean) / self.x_scale, (y - self.y_mean) / self.y_scale

    def to_original(self, w: np.ndarray, b: float) -> tuple[np.ndarray, float]:
        """Weights trained on standardized data -> weights in the data's own units."""
        weights = self.y_scale * np.asarray(w, dtype=np.float64) / self.x_scale
        bias = self.y_mean + self.y_scale * float(b) - float(weights @ self.x_mean)
        return weights, bias

    def to_dict(self) -> dict[str, object]:
        return {k: np.asarray(v).tolist() for k, v in asdict(self).items()}
