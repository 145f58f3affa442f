"""Parity measures (dlport/compare/parity.py) on hand-made results.

Pinned: ``loss_difference`` compares the validation curves as well as the training ones, calls
curves that stop at another epoch (early stopping) infinitely apart, also when the other result
has no validation curve at all, and is None for the exact solver; ``measure`` words the engine
note as a clause the report prints after the framework's name.
"""

from __future__ import annotations

import dataclasses
import math

from dlport.common.config import TrainConfig
from dlport.common.conventions import Conventions
from dlport.compare.parity import loss_difference, measure
from dlport.frameworks.numpy.trainer import NumpyTrainer


def _with_history(result, **history):
    return dataclasses.replace(result, history=history)


def test_loss_difference_includes_the_validation_curve(diabetes):
    result = NumpyTrainer().fit(diabetes, TrainConfig(epochs=2))
    a = _with_history(result, loss=[1.0, 0.5], val_loss=[2.0, 1.0])
    b = _with_history(result, loss=[1.0, 0.5], val_loss=[2.0, 1.25])
    assert loss_difference(a, b) == 0.25 / 1.25
    assert loss_difference(a, a) == 0.0


def test_curves_of_different_lengths_are_infinitely_apart(diabetes):
    result = NumpyTrainer().fit(diabetes, TrainConfig(epochs=2))
    a = _with_history(result, loss=[1.0, 0.5], val_loss=[2.0, 1.0])
    stopped_early = _with_history(result, loss=[1.0], val_loss=[2.0])
    assert loss_difference(a, stopped_early) == math.inf
    without_validation = _with_history(result, loss=[1.0, 0.5])
    assert loss_difference(a, without_validation) == math.inf
    assert loss_difference(_with_history(result, loss=[]), a) is None


def test_the_engine_note_reads_after_the_frameworks_name(diabetes):
    result = NumpyTrainer().fit(diabetes, TrainConfig(epochs=2))
    rounded = dataclasses.replace(
        result,
        conventions=Conventions(parallel_sum_float32=True).to_dict(),
        timing={**result.timing, "workers": 2},
    )
    note = measure(rounded, result, result).engine_note
    assert note.startswith("its parameter server") and note.endswith("to float32")
