"""``TrainResult`` and its versioned JSON form."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from dlport.common.atomic import write_text_atomic
from dlport.common.errors import DlportError

SCHEMA_VERSION = 1


@dataclass
class TrainResult:
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        # allow_nan=False: a non-finite number is a bug upstream, never a result.
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def write_json(self, path: str) -> None:
        write_text_atomic(path, self.to_json() + "\n")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainResult:
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
        if not all(math.isfinite(v) for v in [*result.weights, result.bias]):
            raise DlportError("result holds non-finite weights")
        return result

    @classmethod
    def from_json(cls, text: str) -> TrainResult:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DlportError(f"result is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise DlportError("result JSON must be an object")
        return cls.from_dict(data)
