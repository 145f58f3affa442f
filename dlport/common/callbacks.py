"""The parts of the epoch loop that are not training, as callbacks (Keras' ``CallbackList``):
the progress bar, checkpoints and any early stop are each one callback of ``TrainerBase.fit``'s
one loop, given as ``fit(data, config, callbacks=[...])``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from dlport.common.progress import progress_bar

if TYPE_CHECKING:
    from dlport.common.checkpoint import Checkpoint
    from dlport.common.config import TrainConfig
    from dlport.common.data import Dataset
    from dlport.common.standardize import Standardizer


@dataclass
class TrainingRun:
    """What callbacks see of a run; ``stop`` is theirs to set (the loop ends after the epoch)."""

    trainer: Any  # the TrainerBase running it
    config: TrainConfig
    data: Dataset
    scaler: Standardizer
    resume: Checkpoint | None
    history: list[float] = field(default_factory=list)  # loss per epoch, the resumed ones too
    stop: bool = False
    device: str = "cpu"  # the one it trains on
    val_history: list[float] = field(default_factory=list)  # with --validation, the same way
    best: Any = None  # validation.BestEpoch, kept by EarlyStopping for --restore-best


class Callback:
    """A hook of the epoch loop; each is optional. ``epoch`` counts the epochs done."""

    def on_train_begin(self, run: TrainingRun) -> None:
        """Before the first epoch (and before the exact solver)."""

    def on_epoch_end(self, run: TrainingRun, epoch: int, runner) -> None:
        """After each epoch, its loss already in ``run.history``; ``runner`` has the params."""

    def on_train_end(self, run: TrainingRun, w: np.ndarray, b: float, runner) -> None:
        """After the last epoch, with the final training-unit params and the runner (its
        optimizer state on demand: most runs never need it); after the exact solve, no
        runner (None)."""

    def on_interrupt(self, run: TrainingRun) -> None:
        """On Ctrl-C, before KeyboardInterrupt goes on (a callback may raise instead)."""

    def close(self, run: TrainingRun) -> None:
        """Always last, however the run ended."""


class CallbackList(Callback):
    """Calls each callback's hook in order."""

    def __init__(self, callbacks: Iterable[Callback] = ()):
        self.callbacks = list(callbacks)

    def on_train_begin(self, run):
        for callback in self.callbacks:
            callback.on_train_begin(run)

    def on_epoch_end(self, run, epoch, runner):
        for callback in self.callbacks:
            callback.on_epoch_end(run, epoch, runner)

    def on_train_end(self, run, w, b, runner):
        for callback in self.callbacks:
            callback.on_train_end(run, w, b, runner)

    def on_interrupt(self, run):
        for callback in self.callbacks:
            callback.on_interrupt(run)

    def close(self, run):
        for callback in reversed(self.callbacks):
            callback.close(run)


class ProgressBar(Callback):
    """A bar of the epochs with the last loss, on a terminal only (``progress.progress_bar``)."""

    def __init__(self):
        self._context = self._bar = None

    def on_train_begin(self, run):
        if run.config.solver == "exact":
            return
        label = f"{run.trainer.name} {run.config.optimizer}"
        self._context = progress_bar(run.config.epochs - len(run.history), label)
        self._bar = self._context.__enter__()

    def on_epoch_end(self, run, epoch, runner):
        if self._bar is not None:
            self._bar.advance(f"loss {run.history[-1]:.6g}")

    def close(self, run):
        if self._context is not None:
            self._context.__exit__(None, None, None)
            self._context = self._bar = None


class StopWhen(Callback):
    """Ends the run after the first epoch where ``done(epochs_done, w, b)`` (training units)."""

    def __init__(self, done: Callable[[int, np.ndarray, float], bool]):
        self.done = done

    def on_epoch_end(self, run, epoch, runner):
        if self.done(epoch, *runner.params()):
            run.stop = True
