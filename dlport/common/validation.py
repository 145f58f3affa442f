"""The held-out split and the two callbacks that use it (docs/design.md, "Validation").

The split is a pure function of (rows, fraction, seed), so every framework, every worker of a
data-parallel run and every resume holds out the same rows. Validation loss is the run's loss
on the held-out rows in training units, from the framework's own forward pass, so that it
reads beside the training loss.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from dlport.common.callbacks import Callback
from dlport.common.data import Dataset
from dlport.common.errors import DlportError
from dlport.common.losses import mean_loss, parse_loss
from dlport.common.metrics import regression_metrics

_VALIDATION_STREAM = 3  # beside batching's streams: its own draws, whatever the batch order


def split_validation(data: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """(training rows, held-out rows): round(n * fraction) rows drawn by the seed, each part
    in the data's own row order."""
    n = data.n_samples
    held = round(n * fraction)
    if not 1 <= held < n:
        raise DlportError(
            f"--validation {fraction:g} of {n} rows holds out {held}; give a fraction that "
            "leaves at least one row on each side"
        )
    order = np.random.default_rng([seed, _VALIDATION_STREAM]).permutation(n)
    return _rows(data, np.sort(order[held:])), _rows(data, np.sort(order[:held]))


def _rows(data: Dataset, index: np.ndarray) -> Dataset:
    return dataclasses.replace(data, X=data.X[index], y=data.y[index])


class Validation(Callback):
    """Scores the held-out rows after every epoch (``run.val_history``) and, at the end, their
    metrics in the data's units (``val_mse``, ... beside the training metrics)."""

    def __init__(self, held_out: Dataset, to_training_units):
        self.held_out = held_out
        self.to_training_units = to_training_units  # (X, y) -> standardized, in the run's dtype

    def on_train_begin(self, run):
        self.X, self.y = self.to_training_units(self.held_out.X, self.held_out.y)
        self.loss = parse_loss(run.config.loss)

    def on_epoch_end(self, run, epoch, runner):
        w, b = runner.params()
        predicted = run.trainer._predict(self.X, w.astype(self.X.dtype), b, run.device)
        residual = np.asarray(predicted, dtype=np.float64).reshape(-1) - self.y
        run.val_history.append(mean_loss(self.loss, residual))

    def scores(self, weights: np.ndarray, bias: float) -> dict[str, float]:
        data = self.held_out
        metrics = regression_metrics(data.y, data.X @ weights + bias)
        return {f"val_{name}": value for name, value in metrics.items()}


@dataclass
class BestEpoch:
    epoch: int
    weights: np.ndarray  # training units
    bias: float


class EarlyStopping(Callback):
    """Keras' ``EarlyStopping(monitor="val_loss", patience, min_delta=0,
    restore_best_weights)``: the run stops once the validation loss has not improved (strictly)
    for ``patience`` epochs; with ``restore_best``, it ends on the best epoch's weights, stopped
    early or not. After ``Validation``; its state comes back from a checkpoint's history."""

    def __init__(self, patience: int, restore_best: bool):
        self.patience, self.restore_best = patience, restore_best

    def on_train_begin(self, run):
        losses = run.val_history
        self.best = min(losses, default=np.inf)
        self.wait = len(losses) - 1 - losses.index(self.best) if losses else 0
        saved = run.resume.payload.get("best") if run.resume is not None else None
        if saved is not None:
            run.best = BestEpoch(saved["epoch"], np.asarray(saved["weights"]), saved["bias"])
        run.stop = self.wait >= self.patience  # a resumed run that had stopped stays stopped

    def on_epoch_end(self, run, epoch, runner):
        loss = run.val_history[-1]
        if loss < self.best:
            self.best, self.wait = loss, 0
            if self.restore_best:
                run.best = BestEpoch(epoch, *runner.params())
        else:
            self.wait += 1
        if self.wait >= self.patience:
            run.stop = True
