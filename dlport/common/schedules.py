"""The learning rate at every update step: one definition, that each framework's own scheduler
(torch ``lr_scheduler``, Keras ``LearningRateSchedule``, MXNet ``lr_scheduler``, optax
schedules) is built to reproduce (docs/design.md, "Learning-rate schedules").

Steps count updates from 0; S is the steps per epoch, T = epochs * S the run's steps and
W = warmup_epochs * S the warmup's. Warmup: lr * (t + 1) / (W + 1) for t < W (it never starts
at 0, which torch's LinearLR refuses); then, at s = t - W steps after it,

- constant: lr
- step:E:G: lr * G ** floor(s / (E * S))       (G every E epochs)
- exponential:G: lr * G ** (s / S)             (G per epoch, smoothly per step)
- cosine: lr * (1 + cos(pi * s / (T - W))) / 2  (to 0 at the end of the run)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dlport.common.batching import steps_per_epoch
from dlport.common.errors import DlportError

_FORMS = "constant, step:EPOCHS:GAMMA, exponential:GAMMA or cosine"


@dataclass(frozen=True)
class ScheduleSpec:
    """What --lr-schedule says: the kind, and step's EPOCHS and GAMMA, exponential's GAMMA."""

    kind: str
    gamma: float = 1.0
    every_epochs: int = 0


def parse_schedule(text: str) -> ScheduleSpec:
    if not isinstance(text, str):
        raise DlportError(f"lr_schedule must be text ({_FORMS}), got {text!r}")
    kind, *args = text.split(":")
    counts = {"constant": 0, "cosine": 0, "exponential": 1, "step": 2}
    if kind not in counts or len(args) != counts[kind]:
        raise DlportError(f"unknown --lr-schedule {text!r}; give {_FORMS}")
    try:
        numbers = [float(a) for a in args]
    except ValueError:
        raise DlportError(f"--lr-schedule {text!r}: EPOCHS and GAMMA are numbers") from None
    if kind == "exponential":
        return ScheduleSpec(kind, gamma=_gamma(numbers[0], text))
    if kind == "step":
        every, gamma = numbers
        if every != int(every) or every < 1:
            raise DlportError(f"--lr-schedule {text!r}: EPOCHS must be a positive integer")
        return ScheduleSpec(kind, gamma=_gamma(gamma, text), every_epochs=int(every))
    return ScheduleSpec(kind)


def _gamma(value: float, text: str) -> float:
    if not (math.isfinite(value) and 0 < value <= 1):
        raise DlportError(f"--lr-schedule {text!r}: GAMMA must be in (0, 1]")
    return value


@dataclass(frozen=True)
class Schedule:
    """A run's learning rate per step; ``rate(t)`` is the reference every framework matches."""

    spec: ScheduleSpec
    lr: float
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int

    @classmethod
    def of(cls, config, steps_per_epoch: int) -> Schedule:
        return cls(
            parse_schedule(config.lr_schedule),
            config.lr,
            steps_per_epoch,
            config.epochs * steps_per_epoch,
            config.warmup_epochs * steps_per_epoch,
        )

    @classmethod
    def for_rows(cls, config, rows: int) -> Schedule:
        """The schedule of a run of ``config`` on ``rows`` rows."""
        return cls.of(config, steps_per_epoch(rows, config.batch_size_for(rows)))

    @property
    def constant(self) -> bool:
        return self.spec.kind == "constant" and self.warmup_steps == 0

    @property
    def decay_steps(self) -> int:
        """T - W: the steps after warmup, over which cosine decays."""
        return self.total_steps - self.warmup_steps

    @property
    def step_every(self) -> int:
        """step's E * S: the steps between two decays."""
        return self.spec.every_epochs * self.steps_per_epoch

    def rate(self, t: int) -> float:
        lr, W, spec = self.lr, self.warmup_steps, self.spec
        if t < W:
            return lr * (t + 1) / (W + 1)
        s = t - W
        if spec.kind == "step":
            return lr * spec.gamma ** (s // self.step_every)
        if spec.kind == "exponential":
            return lr * spec.gamma ** (s / self.steps_per_epoch)
        if spec.kind == "cosine":
            return lr * (1 + math.cos(math.pi * s / self.decay_steps)) / 2
        return lr
