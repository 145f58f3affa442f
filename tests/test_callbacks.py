"""The epoch loop's callbacks, in process: what each hook sees, in which order, and how a
callback ends a run."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from dlport.common import callbacks as callbacks_module
from dlport.common.callbacks import Callback, ProgressBar, StopWhen
from dlport.common.config import TrainConfig
from dlport.frameworks.numpy.trainer import NumpyTrainer, ReferenceRunner


class Recorder(Callback):
    def __init__(self, name, log):
        self.name, self.log = name, log

    def on_train_begin(self, run):
        self.log.append((self.name, "begin", len(run.history)))

    def on_epoch_end(self, run, epoch, runner):
        self.log.append((self.name, "epoch", epoch, run.history[-1]))

    def on_train_end(self, run, w, b, runner):
        self.log.append((self.name, "end", len(run.history)))

    def on_interrupt(self, run):
        self.log.append((self.name, "interrupt", len(run.history)))

    def close(self, run):
        self.log.append((self.name, "close"))


def test_hooks_run_in_order_and_close_in_reverse(diabetes):
    log = []
    result = NumpyTrainer().fit(
        diabetes, TrainConfig(epochs=2), callbacks=[Recorder("a", log), Recorder("b", log)]
    )
    loss = result.history["loss"]
    assert log == [
        ("a", "begin", 0), ("b", "begin", 0),
        ("a", "epoch", 1, loss[0]), ("b", "epoch", 1, loss[0]),
        ("a", "epoch", 2, loss[1]), ("b", "epoch", 2, loss[1]),
        ("a", "end", 2), ("b", "end", 2),
        ("b", "close"), ("a", "close"),
    ]  # fmt: skip


def test_ctrl_c_reaches_every_callback_then_goes_on(diabetes, monkeypatch):
    calls = []
    run_epoch = ReferenceRunner.run_epoch

    def interrupted_second(self, order):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return run_epoch(self, order)

    monkeypatch.setattr(ReferenceRunner, "run_epoch", interrupted_second)
    log = []
    with pytest.raises(KeyboardInterrupt):
        NumpyTrainer().fit(
            diabetes, TrainConfig(epochs=5), callbacks=[Recorder("a", log), Recorder("b", log)]
        )
    assert log[-4:] == [
        ("a", "interrupt", 1),
        ("b", "interrupt", 1),
        ("b", "close"),
        ("a", "close"),
    ]


def test_stop_when_ends_the_run_after_the_first_epoch_it_holds(diabetes):
    seen = []

    def done(epochs, w, b):
        seen.append((epochs, w.shape, type(b)))
        return epochs >= 3

    result = NumpyTrainer().fit(diabetes, TrainConfig(epochs=10), callbacks=[StopWhen(done)])
    assert len(result.history["loss"]) == 3
    assert seen == [(e, (diabetes.n_features,), float) for e in (1, 2, 3)]


def test_progress_bar_counts_the_epochs_left_and_shows_the_loss(diabetes, monkeypatch):
    opened = []

    class Bar:
        def __init__(self):
            self.notes = []

        def advance(self, note=""):
            self.notes.append(note)

    @contextlib.contextmanager
    def fake_progress_bar(total, description):
        bar = Bar()
        opened.append([total, description, bar, "open"])
        yield bar
        opened[-1][3] = "closed"

    monkeypatch.setattr(callbacks_module, "progress_bar", fake_progress_bar)
    result = NumpyTrainer().fit(diabetes, TrainConfig(epochs=3), callbacks=[ProgressBar()])
    ((total, description, bar, state),) = opened
    assert (total, description, state) == (3, "numpy sgd", "closed")
    assert bar.notes == [f"loss {loss:.6g}" for loss in result.history["loss"]]
    NumpyTrainer().fit(diabetes, TrainConfig(solver="exact"), callbacks=[ProgressBar()])
    assert len(opened) == 1  # the exact solver has no epochs to show


def test_a_run_ends_with_the_final_params(diabetes):
    got = {}

    class Final(Callback):
        def on_train_end(self, run, w, b, runner):
            got.update(w=np.array(w), b=b, optimizer=runner.optimizer_state())

    NumpyTrainer().fit(diabetes, TrainConfig(optimizer="adam", epochs=2), callbacks=[Final()])
    assert got["w"].shape == (diabetes.n_features,) and isinstance(got["b"], float)
    assert got["optimizer"]["step"] == 2 * 14  # Adam's count: 14 steps an epoch on 442 rows
