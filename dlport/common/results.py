"""``TrainResult`` and its versioned JSON form."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from dlport.common.atomic import write_text_atomic
from dlport.common.config import TrainConfig
from dlport.common.conventions import ADAM_EPS_HAT, ADAM_EPS_OUTSIDE_VHAT, Conventions
from dlport.common.errors import DlportError

SCHEMA_VERSION = 1
METRICS = {"mse", "rmse", "mae", "r2"}
ADAM_EPS_FORMS = (ADAM_EPS_OUTSIDE_VHAT, ADAM_EPS_HAT)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class TrainResult:
    """One run: the weights in the data's units, history, metrics, timing and everything needed
    to reproduce it (config, conventions, versions); ``to_json``/``from_json`` round-trip it."""

    framework: str
    framework_version: str
    device: str
    dtype: str
    config: dict[str, Any]
    conventions: dict[str, Any]
    data: dict[str, Any]  # source, n_samples, n_features, feature_names, target
    weights: list[float]  # original feature units, in feature order
    bias: float
    history: dict[str, list[float]]  # "loss": training MSE per epoch (standardized units)
    metrics: dict[str, float]  # mse, rmse, mae, r2 on the training data, original units
    timing: dict[str, float]  # fit_seconds, first_epoch_seconds, steps, steps_per_second
    standardization: dict[str, Any]
    versions: dict[str, str] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def predict(self, X) -> np.ndarray:
        """``X @ weights + bias`` in float64 (NumPy): the trained model, whatever trained it."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.weights):
            raise DlportError(
                f"X has shape {X.shape} but the model has {len(self.weights)} features; pass "
                f"a 2-D array with columns {self.data['feature_names']}"
            )
        return X @ np.asarray(self.weights) + self.bias

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        # allow_nan=False: a non-finite number is a bug upstream, never a result.
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def write_json(self, path: str) -> None:
        write_text_atomic(path, self.to_json() + "\n")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainResult:
        """A result from JSON another process wrote, checked field by field: what parity,
        reports and plots read must be there, of the right type, shape and finite."""
        if not isinstance(data, dict):
            raise DlportError(f"a result is a JSON object, not a {type(data).__name__}")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise DlportError(
                f"result schema version {version!r} is not {SCHEMA_VERSION}; "
                "re-run with this dlport version"
            )
        try:
            result = cls(**data)
        except TypeError as exc:
            raise DlportError(f"malformed result object ({exc})") from None
        problem = result._problem()
        if problem:
            raise DlportError(f"malformed result object ({problem})")
        return result

    def _problem(self) -> str:
        """What is wrong with this result's fields ('' if nothing)."""
        for name in ("framework", "framework_version", "device", "dtype"):
            if not isinstance(getattr(self, name), str):
                return f"{name} is not a string"
        for name in ("config", "conventions", "data", "history", "metrics", "timing"):
            if not isinstance(getattr(self, name), dict):
                return f"{name} is not an object"
        if not isinstance(self.standardization, dict) or not isinstance(self.versions, dict):
            return "standardization or versions is not an object"
        try:
            config = TrainConfig.from_dict(self.config)
            conventions = Conventions(**self.conventions)
        except (DlportError, TypeError) as exc:
            return f"config or conventions: {exc}"
        if conventions.adam_eps not in ADAM_EPS_FORMS or not isinstance(
            conventions.float32_hyperparameters, bool
        ):
            return f"unknown conventions {self.conventions}"
        if self.dtype != config.dtype:
            return f"dtype {self.dtype!r} is not the config's {config.dtype!r}"
        d, n = self.data.get("n_features"), self.data.get("n_samples")
        if not all(isinstance(v, int) and v > 0 for v in (d, n)):
            return "data needs n_features and n_samples as positive integers"
        names = self.data.get("feature_names")
        if not (
            isinstance(names, list) and len(names) == d and all(isinstance(n, str) for n in names)
        ):
            return f"data.feature_names is not {d} strings"
        if not isinstance(self.weights, list) or len(self.weights) != d:
            return f"weights is not a list of {d} numbers, one per feature"
        if not (all(map(_finite, self.weights)) and _finite(self.bias)):
            return "weights and bias must be finite numbers"
        loss = self.history.get("loss")
        if not (isinstance(loss, list) and all(map(_finite, loss))):
            return "history.loss is not a list of finite numbers"
        if not set(self.metrics) >= METRICS or not all(map(_finite, self.metrics.values())):
            return f"metrics must hold {sorted(METRICS)} as finite numbers"
        if "fit_seconds" not in self.timing or not all(map(_finite, self.timing.values())):
            return "timing must hold fit_seconds, all as finite numbers"
        return ""

    @classmethod
    def from_json(cls, text: str) -> TrainResult:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DlportError(f"result is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise DlportError("result JSON must be an object")
        return cls.from_dict(data)
