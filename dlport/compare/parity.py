"""Parity measures between results (docs/design.md, "Tolerances": max |a - b| / max(1, |b|))."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dlport.common.conventions import Conventions
from dlport.common.metrics import max_relative_difference
from dlport.common.results import TrainResult

# Against the reference of the framework's own convention; float32 against float64.
TOLERANCE = {"float64": 1e-9, "float32": 1e-4}
# A data-parallel run whose engine may round its sums to float32 (MXNet's server): 1.1e-7
# measured on the loss when it does.
FLOAT32_SUMS_TOLERANCE = 1e-6


def params(result: TrainResult) -> np.ndarray:
    return np.append(result.weights, result.bias)


def loss_difference(a: TrainResult, b: TrainResult) -> float | None:
    """Max relative difference of the per-epoch loss curves, validation loss included (None
    for the exact solver)."""
    if not a.history["loss"]:
        return None
    curves = [(a.history[k], b.history.get(k, [])) for k in ("loss", "val_loss") if k in a.history]
    if any(len(x) != len(y) for x, y in curves):  # early stopping at another epoch
        return float("inf")
    return max(max_relative_difference(x, y) for x, y in curves)


def per_epoch_difference(a: TrainResult, b: TrainResult) -> np.ndarray:
    la, lb = np.asarray(a.history["loss"]), np.asarray(b.history["loss"])
    return np.abs(la - lb) / np.maximum(1.0, np.abs(lb))


@dataclass
class Parity:
    params_diff: float
    loss_diff: float | None
    tolerance: float
    # (what differs from the canonical rules, its measured size on this run)
    convention_notes: list[tuple[str, float]] = field(default_factory=list)
    engine_note: str | None = None  # a difference of its distributed engine, within tolerance

    @property
    def passed(self) -> bool:
        worst = max(self.params_diff, self.loss_diff or 0.0)
        return worst < self.tolerance


def measure(result: TrainResult, reference: TrainResult, canonical: TrainResult) -> Parity:
    """``reference`` follows the result's conventions; ``canonical`` follows torch's rules."""
    notes = []
    config, conventions = result.config, Conventions(**result.conventions)
    described = conventions.describe(config)
    if described:
        size = max_relative_difference(params(reference), params(canonical))
        notes = [("; ".join(described), size)]
    tolerance, engine_note = TOLERANCE[result.dtype], None
    if result.timing.get("workers", 1) > 1 and conventions.parallel_sum_float32:
        # MXNet's parameter server (docs/design.md): the reference cannot follow it
        tolerance = max(tolerance, FLOAT32_SUMS_TOLERANCE)
        engine_note = "its parameter server may round the workers' sums to float32"
    return Parity(
        params_diff=max_relative_difference(params(result), params(reference)),
        loss_diff=loss_difference(result, reference),
        tolerance=tolerance,
        convention_notes=notes,
        engine_note=engine_note,
    )


def pairwise(results: dict[str, TrainResult]) -> dict[str, dict[str, dict[str, float | None]]]:
    """For every pair of results: max relative difference of parameters and loss curves."""
    return {
        a: {
            b: {
                "params": max_relative_difference(params(ra), params(rb)),
                "loss": loss_difference(ra, rb),
            }
            for b, rb in results.items()
            if b != a
        }
        for a, ra in results.items()
    }
