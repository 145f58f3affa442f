"""The frozen training configuration shared by every framework."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from dlport.common.errors import DlportError

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")
DTYPES = ("float32", "float64")
DEVICES = ("cpu", "gpu", "auto")
# Settings a resume may change: they change where and how precisely it runs, not the run.
RESUME_MAY_CHANGE = ("epochs", "device", "tf32")
SOLVERS = ("gd", "exact")


def _choice(field: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise DlportError(f"unknown {field} {value!r}; choose one of: {', '.join(allowed)}")


def _positive(field: str, value: float, *, integer: bool = False) -> None:
    bad_type = not isinstance(value, int) or isinstance(value, bool) if integer else False
    if bad_type or not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        kind = "a positive integer" if integer else "a positive number"
        raise DlportError(f"{field} must be {kind}, got {value!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one run. Validated on construction; ``batch_size=None`` is full batch."""

    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9  # used by "momentum" and "nesterov"
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8  # passed explicitly to every framework: their defaults differ
    # Scale each step's gradient so that its global norm (every parameter, one vector) is at
    # most this; None: no clipping (docs/design.md, "Gradient clipping").
    clip_norm: float | None = None
    epochs: int = 50
    batch_size: int | None = 32
    seed: int = 0
    dtype: str = "float64"
    device: str = "auto"
    solver: str = "gd"
    standardize: bool = True
    # NVIDIA GPUs, float32: let matmuls use TF32 (10-bit mantissa products; faster, about 1e-3
    # relative). Off by default: parity runs keep full float32 (docs/design.md).
    tf32: bool = False

    def __post_init__(self) -> None:
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("dtype", self.dtype, DTYPES)
        _choice("device", self.device, DEVICES)
        _choice("solver", self.solver, SOLVERS)
        _positive("lr", self.lr)
        _positive("eps", self.eps)
        _positive("epochs", self.epochs, integer=True)
        if self.batch_size is not None:
            _positive("batch size", self.batch_size, integer=True)
        if self.clip_norm is not None:
            _positive("clip_norm", self.clip_norm)
        for name in ("momentum", "beta1", "beta2"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 <= value < 1):
                raise DlportError(f"{name} must be in [0, 1), got {value!r}")
        if not isinstance(self.tf32, bool) or not isinstance(self.standardize, bool):
            raise DlportError("tf32 and standardize must be true or false")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise DlportError(f"seed must be a non-negative integer, got {self.seed!r}")

    def batch_size_for(self, n: int) -> int:
        """The effective batch size on ``n`` samples (full batch, or capped at n)."""
        return n if self.batch_size is None else min(self.batch_size, n)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DlportError(f"unknown config keys {unknown}; known keys: {sorted(known)}")
        return cls(**data)


def parse_batch_size(text: str) -> int | None:
    """``full`` -> None (full batch), otherwise a positive integer."""
    if text.strip().lower() == "full":
        return None
    try:
        value = int(text)
    except ValueError:
        raise DlportError(
            f"batch size must be a positive integer or 'full', got {text!r}"
        ) from None
    _positive("batch size", value, integer=True)
    return value
