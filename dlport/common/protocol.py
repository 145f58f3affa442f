"""The protocol every framework's trainer implements."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from dlport.common.config import TrainConfig
    from dlport.common.conventions import Conventions
    from dlport.common.data import Dataset
    from dlport.common.results import TrainResult


@runtime_checkable
class Trainer(Protocol):
    name: ClassVar[str]
    conventions: ClassVar[Conventions]

    def version(self) -> str:
        """The framework's version string."""

    def devices(self) -> list[str]:
        """Devices usable here: "cpu", plus "gpu" where the framework sees one."""

    def fit(self, data: Dataset, config: TrainConfig, *, progress: bool = False) -> TrainResult:
        """Train on ``data`` and return weights in the data's original units."""

    def predict(
        self, weights: np.ndarray, bias: float, X: np.ndarray, *, dtype: str, device: str
    ) -> np.ndarray:
        """X @ weights + bias, computed by the framework on ``device`` in ``dtype``."""
