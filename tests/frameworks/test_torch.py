"""Checks specific to the PyTorch port."""

from __future__ import annotations

import numpy as np
import torch

from dlport.common.batching import epoch_order, iter_batches
from dlport.common.config import TrainConfig
from dlport.common.init import initial_params
from dlport.common.standardize import Standardizer
from dlport.frameworks.torch.trainer import TorchRunner, graphed, make_linear, make_optimizer


def test_float64_end_to_end(diabetes):
    X, y = Standardizer.fit(diabetes.X, diabetes.y).transform(diabetes.X, diabetes.y)
    w0, b0 = initial_params(X.shape[1], 0)
    runner = TorchRunner(X, y, w0, b0, TrainConfig(optimizer="adam"), torch.device("cpu"))
    runner.run_epoch(np.arange(len(y)))
    assert {p.dtype for p in runner.model.parameters()} == {torch.float64}
    states = [t for s in runner.optimizer.state.values() for t in s.values() if t.numel() > 1]
    assert states and {t.dtype for t in states} == {torch.float64}


def test_runner_equals_a_plain_torch_loop(diabetes):
    """The trainer's loop is the textbook one: same parts, same order, same numbers."""
    config = TrainConfig(optimizer="nesterov", epochs=3)
    X, y = Standardizer.fit(diabetes.X, diabetes.y).transform(diabetes.X, diabetes.y)
    w0, b0 = initial_params(X.shape[1], config.seed)
    model = make_linear(w0, b0, torch.float64, "cpu")
    optimizer = make_optimizer(model.parameters(), config)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y).unsqueeze(1)
    for epoch in range(config.epochs):
        for idx in iter_batches(epoch_order(len(y), config.seed, epoch, 32), 32):
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(Xt[idx]), yt[idx])
            loss.backward()
            optimizer.step()
    runner = TorchRunner(X, y, w0, b0, config, torch.device("cpu"))
    for epoch in range(config.epochs):
        runner.run_epoch(epoch_order(len(y), config.seed, epoch, 32))
    assert torch.equal(runner.model.weight, model.weight)
    assert torch.equal(runner.model.bias, model.bias)


def test_gpu_epochs_replay_as_a_cuda_graph_except_float64_adam():
    gpu = TrainConfig(device="gpu")
    assert graphed(gpu.replace(optimizer="momentum"), "gpu")
    assert graphed(gpu.replace(optimizer="adam", dtype="float32"), "gpu")
    assert not graphed(gpu.replace(optimizer="adam", dtype="float64"), "gpu")
    assert not graphed(TrainConfig(device="cpu"), "cpu")


def test_tf32_is_off_unless_a_run_asks(diabetes):
    from dlport.frameworks.torch.trainer import TorchTrainer

    trainer = TorchTrainer()
    trainer.fit(diabetes, TrainConfig(epochs=1, device="cpu", tf32=True))
    assert torch.backends.cuda.matmul.allow_tf32
    trainer.fit(diabetes, TrainConfig(epochs=1, device="cpu"))
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32


def test_small_steps_run_on_one_thread_and_the_callers_setting_comes_back(diabetes):
    from dlport.frameworks.torch.trainer import ONE_THREAD_BELOW, cpu_threads

    assert cpu_threads(256, 16, 8) == 1
    assert cpu_threads(ONE_THREAD_BELOW, 1, 8) == 8
    seen = []
    X, y = (a.astype(np.float32) for a in (diabetes.X, diabetes.y))
    runner = TorchRunner(X, y, np.zeros(X.shape[1]), 0.0, TrainConfig(dtype="float32"), "cpu")
    step = runner.step
    runner.step = lambda xb, yb: seen.append(torch.get_num_threads()) or step(xb, yb)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        runner.run_epoch(np.arange(len(y)))
        assert set(seen) == {1} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


# The data-parallel runs every framework with an engine passes.
from data_parallel_suite import *  # noqa: E402, F403
