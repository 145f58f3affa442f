"""The Gluon loop a user writes first: a shuffled DataLoader over an ArrayDataset, Dense(1),
L2Loss, Trainer("sgd"), trainer.step(batch_size); not hybridized."""

from __future__ import annotations

import time
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # mxnet 1.9.1's import on numpy 1.23
    import mxnet as mx
    from mxnet import autograd, gluon


def idiomatic_fit(X, y, batch_size: int, epochs: int) -> list[float]:
    loader = gluon.data.DataLoader(
        gluon.data.ArrayDataset(X, y.reshape(-1, 1)), batch_size=batch_size, shuffle=True
    )
    net = gluon.nn.Dense(1, in_units=X.shape[1], dtype=str(X.dtype))
    net.initialize(mx.init.Normal(0.01))
    loss_fn = gluon.loss.L2Loss()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.01})
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        for xb, yb in loader:
            with autograd.record():
                loss = loss_fn(net(xb), yb)
            loss.backward()
            trainer.step(xb.shape[0])
        mx.nd.waitall()  # the engine is asynchronous: time the work, not its queueing
        seconds.append(time.perf_counter() - start)
    return seconds
