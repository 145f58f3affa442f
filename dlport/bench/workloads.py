"""The standard benchmark workloads (plain SGD, synthetic data, noise 0.1)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Workload:
    name: str
    n: int
    d: int
    batch_size: int | None  # None: full batch
    lr: float
    timed_epochs: int  # steady-state epochs per repeat, after one warm-up epoch
    max_epochs: int  # time-to-quality gives up after these
    idiomatic_epochs: int | None  # None: no idiomatic baseline (too slow to be useful)
    what: str

    @property
    def data_spec(self) -> str:
        return f"synthetic:n={self.n},d={self.d},noise=0.1,seed=0"


WORKLOADS = {
    w.name: w
    for w in (
        Workload("tiny", 1000, 1, 32, 0.01, 30, 300, 10, "pure per-step overhead"),
        Workload("medium", 100_000, 16, 256, 0.01, 3, 30, 1, "small batches"),
        Workload("large", 2_000_000, 64, 8192, 0.01, 2, 30, None, "memory-bandwidth bound"),
        # Full-batch gradient descent on standardized data: lr 0.5 is about 1/L for it.
        Workload("full", 2_000_000, 64, None, 0.5, 49, 50, None, "full batch, 50 epochs"),
    )
}
# The targets of issue 7: trainer samples/s over the NumPy loop's, CPU, float32.
TARGETS_VS_NUMPY = {"medium": 0.5, "large": 0.8}
TARGET_VS_IDIOMATIC = {"medium": 5.0}
# Issue 12's: time to quality over the NumPy loop's time for the same epochs, and the exact
# solve over NumPy's X.T @ X on the same array.
AT_SCALE = {"large": (1.5, 2.0)}
