"""The frozen training configuration shared by every framework."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from dlport.common.errors import DlportError
from dlport.common.losses import parse_loss
from dlport.common.schedules import parse_schedule

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw")
DTYPES = ("float32", "float64")
DEVICES = ("cpu", "gpu", "auto")
# Settings a resume may change: they change where and how precisely it runs, not the run.
RESUME_MAY_CHANGE = ("epochs", "device", "tf32")  # epochs not under a cosine schedule
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
    # L2 on the weights (never the bias): coupled (added to the gradient) or decoupled (shrinks
    # the weights apart from the gradient) as each framework's own option is; adamw is
    # decoupled everywhere (docs/design.md, "Weight decay").
    weight_decay: float = 0.0
    # The learning rate per update step (common/schedules.py): constant, step:EPOCHS:GAMMA,
    # cosine or exponential:GAMMA, after a linear warmup over warmup_epochs.
    lr_schedule: str = "constant"
    warmup_epochs: int = 0
    loss: str = "mse"  # mse, mae or huber:DELTA (common/losses.py)
    # Hold out this fraction of the rows (a pure function of the seed) and score it each
    # epoch; stop when its loss has not improved for early_stopping epochs, and with
    # restore_best end on the best epoch's weights (docs/design.md, "Validation").
    validation: float = 0.0
    early_stopping: int | None = None
    restore_best: bool = False
    epochs: int = 50
    batch_size: int | None = 32
    seed: int = 0
    dtype: str = "float64"
    device: str = "auto"
    solver: str = "gd"
    standardize: bool = True
    # False: fit through the origin (no bias; standardization scales but does not center).
    fit_intercept: bool = True
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
        wd = self.weight_decay
        if not (isinstance(wd, (int, float)) and math.isfinite(wd) and wd >= 0):
            raise DlportError(f"weight_decay must be a non-negative number, got {wd!r}")
        warmup = self.warmup_epochs
        if not isinstance(warmup, int) or isinstance(warmup, bool) or warmup < 0:
            raise DlportError(f"warmup_epochs must be a non-negative integer, got {warmup!r}")
        parse_schedule(self.lr_schedule)
        if warmup and warmup >= self.epochs:
            raise DlportError(f"warmup_epochs ({warmup}) must be fewer than epochs ({self.epochs})")
        parse_loss(self.loss)
        self._check_validation()
        if self.solver == "exact" and self.loss != "mse":
            raise DlportError(
                f"the exact solver minimizes squared error; --loss {self.loss} needs --solver gd"
            )
        for name in ("momentum", "beta1", "beta2"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 <= value < 1):
                raise DlportError(f"{name} must be in [0, 1), got {value!r}")
        if not all(isinstance(v, bool) for v in (self.tf32, self.standardize, self.fit_intercept)):
            raise DlportError("tf32, standardize and fit_intercept must be true or false")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise DlportError(f"seed must be a non-negative integer, got {self.seed!r}")

    def _check_validation(self) -> None:
        fraction = self.validation
        if not (isinstance(fraction, (int, float)) and 0 <= fraction < 1):
            raise DlportError(f"validation must be a fraction in [0, 1), got {fraction!r}")
        if self.early_stopping is not None:
            _positive("early_stopping (patience)", self.early_stopping, integer=True)
            if not fraction or self.solver == "exact":
                raise DlportError(
                    "--early-stopping watches the validation loss of gradient descent; give "
                    "--validation FRACTION and --solver gd"
                )
        if not isinstance(self.restore_best, bool):
            raise DlportError("restore_best must be true or false")
        if self.restore_best and self.early_stopping is None:
            raise DlportError("--restore-best belongs to --early-stopping PATIENCE; give both")

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
