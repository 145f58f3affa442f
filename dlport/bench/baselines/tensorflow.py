"""The Keras code a user writes first: a Sequential model, compile(SGD, "mse"), model.fit."""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # as dlport's port: no C++ log noise
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import keras  # noqa: E402


class _EpochTimes(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def idiomatic_fit(X, y, batch_size: int, epochs: int) -> list[float]:
    # Seeded, as TF asks once op determinism is on (dlport's port turns it on in-process).
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((X.shape[1],)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
    times = _EpochTimes()
    model.fit(
        X, y, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0, callbacks=[times]
    )
    return times.seconds
