"""The training losses: what --loss names (docs/design.md, "Losses"). Each framework computes
them with its own loss class; the NumPy reference by hand."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dlport.common.errors import DlportError


@dataclass(frozen=True)
class LossSpec:
    """mse: mean(r^2); mae: mean(|r|); huber: mean(r^2 / 2 where |r| <= delta, else
    delta * (|r| - delta / 2)), torch's ``HuberLoss`` and Keras' ``Huber`` (not SmoothL1,
    which is huber / delta)."""

    kind: str
    delta: float = 1.0


def parse_loss(text: str) -> LossSpec:
    if not isinstance(text, str):
        raise DlportError(f"loss must be text (mse, mae or huber:DELTA), got {text!r}")
    kind, _, arg = text.partition(":")
    if kind in ("mse", "mae") and not arg:
        return LossSpec(kind)
    if kind == "huber":
        try:
            delta = float(arg or "nan")
        except ValueError:
            delta = math.nan
        if math.isfinite(delta) and delta > 0:
            return LossSpec(kind, delta)
        raise DlportError(f"--loss {text!r}: DELTA must be a positive number (huber:1.0)")
    raise DlportError(f"unknown --loss {text!r}; give mse, mae or huber:DELTA")


def mean_loss(spec: LossSpec, residual: np.ndarray) -> float:
    """The batch's mean loss of these residuals (prediction - target), in their dtype."""
    r = residual
    if spec.kind == "mae":
        return float(np.mean(np.abs(r)))
    if spec.kind == "huber":
        delta, size = r.dtype.type(spec.delta), np.abs(r)
        return float(np.mean(np.where(size <= delta, r * r / 2, delta * (size - delta / 2))))
    return float(np.mean(r * r))  # every step of the reference: no |r| it does not need
