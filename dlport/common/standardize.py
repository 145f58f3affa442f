"""Standardization of features and target, undone on the reported weights."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from dlport.common.errors import DlportError
from dlport.common.threads import ordered_map

_ROWS_PER_BLOCK = 1 << 13  # 8192 rows x 64 features: 4 MB, a block's deviations in cache
_NOISE = 64 * np.finfo(np.float64).eps  # a std this small (relative) is rounding, not data


@dataclass(frozen=True)
class Moments:
    """Row count, mean and sum of squared deviations of each column: a streaming pass merges
    one per block (Chan, Golub and LeVeque's pairwise update), as accurate in float64 as the
    two-pass mean and std of the whole array."""

    count: int
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray) -> Moments:
        values = values.reshape(len(values), -1)
        mean = values.mean(axis=0)
        return cls(len(values), mean, ((values - mean) ** 2).sum(axis=0))

    def merge(self, other: Moments) -> Moments:
        if not self.count:
            return other
        count = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / count)
        m2 = self.m2 + other.m2 + delta**2 * (self.count * other.count / count)
        return Moments(count, mean, m2)

    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / self.count)

    def root_mean_square(self) -> np.ndarray:
        return np.sqrt(self.m2 / self.count + self.mean**2)


def column_moments(values: np.ndarray) -> Moments:
    """Moments merged over blocks of rows: each block's deviations fit in cache, where
    ``values.std(axis=0)`` makes a temporary the size of the data (2.6x slower on 2M x 64).
    The blocks' moments are computed on threads but merged here in row order: the merge is not
    associative in floating point, and this order gives the serial loop's bits."""
    blocks = ordered_map(
        lambda start: Moments.of(values[start : start + _ROWS_PER_BLOCK]),
        range(0, len(values), _ROWS_PER_BLOCK),
    )
    merged = Moments(0, np.zeros(0), np.zeros(0))
    for block in blocks:
        merged = merged.merge(block)
    return merged


def refuse_overflow(source: str, names, moments: Moments) -> None:
    """Refuse, by name, a column whose float64 mean or variance is not finite: standardizing
    it and the metrics' sums of squares would turn into inf (and JSON cannot hold inf)."""
    with np.errstate(over="ignore", invalid="ignore"):
        bad = ~(np.isfinite(moments.mean) & np.isfinite(moments.std()))
    if bad.any():
        raise DlportError(
            f"{source}: column {names[int(np.argmax(bad))]!r} overflows float64 arithmetic (its "
            "mean or variance is infinite); rescale the data, e.g. divide the column by a "
            "power of 10"
        )


@dataclass(frozen=True)
class Standardizer:
    x_mean: np.ndarray
    x_scale: np.ndarray
    y_mean: float
    y_scale: float

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray, center: bool = True) -> Standardizer:
        return cls.from_moments(column_moments(X), column_moments(y), center)

    @classmethod
    def from_moments(cls, x: Moments, y: Moments, center: bool = True) -> Standardizer:
        """From moments merged over the blocks of a streamed dataset. ``center=False`` (a fit
        through the origin, which a shift would move): no means, scales about the origin."""
        if not center:
            x_rms, y_rms = x.root_mean_square(), y.root_mean_square()
            return cls.from_stats(np.zeros_like(x.mean), x_rms, 0.0, float(y_rms[0]))
        return cls.from_stats(x.mean, x.std(), float(y.mean[0]), float(y.std()[0]))

    @classmethod
    def from_stats(cls, x_mean, x_std, y_mean: float, y_std: float) -> Standardizer:
        # A constant column keeps scale 1: its std is 0, or rounding noise (0.1 repeated has
        # std 1.4e-17), which would blow that noise up to +-1.
        x_scale = np.array(x_std, dtype=np.float64)
        x_scale[x_scale <= _NOISE * np.maximum(1.0, np.abs(x_mean))] = 1.0
        y_scale = y_std if y_std > _NOISE * max(1.0, abs(y_mean)) else 1.0
        return cls(np.asarray(x_mean, dtype=np.float64), x_scale, y_mean, y_scale)

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
