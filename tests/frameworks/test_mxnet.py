"""Checks specific to the MXNet port: its conventions (L2Loss's half, float32 hyperparameters),
float64 end to end, the fast path equal to the textbook Gluon loop, devices, exact solver."""

from __future__ import annotations

import shlex
import subprocess
import sys

import numpy as np
import pytest

import dlport.frameworks.mxnet.trainer as mxt
from dlport.common.batching import epoch_order, iter_batches
from dlport.common.checkpoint import Checkpoint, Checkpointing
from dlport.common.config import TrainConfig
from dlport.common.conventions import ADAM_EPS_HAT, Conventions
from dlport.common.errors import DlportError
from dlport.common.init import initial_params
from dlport.common.metrics import max_relative_difference
from dlport.common.standardize import Standardizer
from dlport.frameworks.numpy.trainer import NumpyTrainer

# Through the port, whose import keeps mxnet 1.9.1's DeprecationWarnings (numpy 1.23) quiet.
mx, autograd, gluon, nd = mxt.mx, mxt.autograd, mxt.gluon, mxt.nd


def _standardized(data):
    return Standardizer.fit(data.X, data.y).transform(data.X, data.y)


def _params(result) -> np.ndarray:
    return np.append(result.weights, result.bias)


@pytest.mark.parametrize("optimizer", ["momentum", "nesterov", "adam"])
def test_float64_end_to_end(diabetes, optimizer):
    X, y = _standardized(diabetes)
    w0, b0 = initial_params(X.shape[1], 0)
    config = TrainConfig(optimizer=optimizer)
    runner = mxt.MXNetRunner(X, y, w0, b0, config, mx.cpu(), hybridize=True)
    runner.run_epoch(np.arange(len(y)))
    params = runner.net.collect_params().values()
    assert {p.data().dtype for p in params} == {np.float64}
    assert {p.grad().dtype for p in params} == {np.float64}
    states = runner.trainer._updaters[0].states.values()
    slots = [s for state in states for s in (state if isinstance(state, tuple) else (state,))]
    assert len(slots) == (4 if optimizer == "adam" else 2)
    assert {s.dtype for s in slots} == {np.float64}
    assert runner.X_epoch.dtype == np.float64


def test_l2loss_weight_two_gives_the_mse_gradient(diabetes):
    """L2Loss is half the squared error; with weight=2, backward()'s batch sum times the 1/m of
    Trainer.step(m) is the gradient of mean(r^2)."""
    X, y = _standardized(diabetes)
    Xb, yb = X[:37], y[:37]
    w0, b0 = initial_params(X.shape[1], 0)
    residual = Xb @ w0 + b0 - yb
    mse_grad = np.append(Xb.T @ residual, residual.sum()) * 2 / len(yb)
    for weight, factor in ((2.0, 1.0), (1.0, 0.5)):
        net = mxt.make_dense(w0, b0, "float64", mx.cpu())
        with autograd.record():
            loss = gluon.loss.L2Loss(weight=weight)(
                net(nd.array(Xb, dtype="float64")), nd.array(yb, dtype="float64")
            )
        loss.backward()  # summed over the batch
        grad = np.append(net.weight.grad().asnumpy(), net.bias.grad().asnumpy()) / len(yb)
        np.testing.assert_allclose(grad, factor * mse_grad, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(loss.asnumpy(), factor * residual**2, rtol=1e-12)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adam"])
def test_runner_equals_the_textbook_gluon_loop(diabetes, optimizer):
    """The fast path (hybridized, summed loss, epoch buffers) changes no number."""
    config = TrainConfig(optimizer=optimizer, epochs=3)
    X, y = _standardized(diabetes)
    w0, b0 = initial_params(X.shape[1], config.seed)
    net = mxt.make_dense(w0, b0, "float64", mx.cpu())
    loss_fn = gluon.loss.L2Loss(weight=2.0)
    trainer = mxt.make_trainer(net.collect_params(), config)
    Xn, yn = nd.array(X, dtype="float64"), nd.array(y.reshape(-1, 1), dtype="float64")
    for epoch in range(config.epochs):
        for idx in iter_batches(epoch_order(len(y), config.seed, epoch, 32), 32):
            with autograd.record():
                loss = loss_fn(net(Xn[idx]), yn[idx])
            loss.backward()
            trainer.step(len(idx))
    runner = mxt.MXNetRunner(X, y, w0, b0, config, mx.cpu(), hybridize=True)
    for epoch in range(config.epochs):
        runner.run_epoch(epoch_order(len(y), config.seed, epoch, 32))
    assert np.array_equal(runner.net.weight.data().asnumpy(), net.weight.data().asnumpy())
    assert np.array_equal(runner.net.bias.data().asnumpy(), net.bias.data().asnumpy())


def test_epoch_loss_summed_in_chunks_is_the_same(diabetes, monkeypatch):
    config = TrainConfig(optimizer="sgd", epochs=2, batch_size=5, device="cpu")  # 89 steps
    whole = mxt.MXNetTrainer().fit(diabetes, config)
    monkeypatch.setattr(mxt, "_SUM_EVERY", 7)
    chunked = mxt.MXNetTrainer().fit(diabetes, config)
    want = NumpyTrainer(mxt.MXNetTrainer.conventions).fit(diabetes, config)
    assert max_relative_difference(chunked.history["loss"], whole.history["loss"]) < 1e-14
    assert max_relative_difference(chunked.history["loss"], want.history["loss"]) < 1e-12


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_hybridized_and_imperative_give_the_same_trajectory(diabetes, dtype):
    config = TrainConfig(optimizer="adam", epochs=4, dtype=dtype, device="cpu")  # tail batch: 26
    fast = mxt.MXNetTrainer(hybridize=True).fit(diabetes, config)
    plain = mxt.MXNetTrainer(hybridize=False).fit(diabetes, config)
    assert fast.weights == plain.weights and fast.bias == plain.bias
    assert fast.history == plain.history


@pytest.mark.parametrize(
    ("optimizer", "batch_size", "lr"), [("adam", None, 0.1), ("momentum", 26, 0.01)]
)
def test_hyperparameters_are_float32(diabetes, optimizer, batch_size, lr):
    """A float64 run matches the float32-hyperparameter reference, not the exact-float64 one."""
    config = TrainConfig(optimizer=optimizer, lr=lr, batch_size=batch_size, epochs=8, device="cpu")
    got = _params(mxt.MXNetTrainer().fit(diabetes, config))
    f32 = _params(NumpyTrainer(mxt.MXNetTrainer.conventions).fit(diabetes, config))
    exact = _params(NumpyTrainer(Conventions(adam_eps=ADAM_EPS_HAT)).fit(diabetes, config))
    # Four orders of magnitude apart: 1e-15-level agreement, a 1e-8..1e-4 convention effect.
    assert max_relative_difference(got, f32) < 1e-12
    assert max_relative_difference(got, exact) > 1e-8


@pytest.mark.parametrize("optimizer", ["sgd", "nesterov"])
def test_resume_continues_bit_for_bit(diabetes, tmp_path, optimizer):
    config = TrainConfig(optimizer=optimizer, epochs=3, device="cpu")
    trainer = mxt.MXNetTrainer()
    full = trainer.fit(diabetes, config)
    path = tmp_path / "one.json"
    trainer.fit(diabetes, config.replace(epochs=1), callbacks=[Checkpointing(path=path)])
    resumed = trainer.fit(diabetes, config, resume=Checkpoint.read(path))
    assert resumed.weights == full.weights and resumed.history == full.history


@pytest.mark.parametrize(("optimizer", "slots"), [("sgd", 0), ("nesterov", 1), ("adam", 2)])
def test_optimizer_slots_are_labelled_with_their_parameter(diabetes, optimizer, slots):
    # gluon.Trainer numbers parameters by sorted name: bias 0, weight 1.
    config = TrainConfig(optimizer=optimizer, epochs=1, device="cpu")
    X, y = _standardized(diabetes)
    w0, b0 = initial_params(diabetes.n_features, 0)
    runner = mxt.MXNetTrainer()._runner(X, y, w0, b0, config, "cpu")
    fresh = runner.optimizer_state()  # the zeros the updater will start from
    runner.run_epoch(epoch_order(len(y), 0, 0, 32))
    state = runner.optimizer_state()
    for got in (fresh, state):
        assert [a.shape for a in got["slots"]["weight"]] == [(1, diabetes.n_features)] * slots
        assert [a.shape for a in got["slots"]["bias"]] == [(1,)] * slots
    assert state["updates"] == {"weight": 14, "bias": 14}
    assert all(not a.any() for a in fresh["slots"]["weight"])


def test_export_is_a_plain_gluon_parameter_file(tmp_path):
    w = np.array([0.5, -1.25, 3.0])
    path = tmp_path / "model.params"
    mxt.MXNetTrainer().export_native(w, -0.75, str(path))
    net = gluon.nn.Dense(1, in_units=3, dtype="float64")
    net.load_parameters(str(path))
    assert net.weight.data().asnumpy().tolist() == [w.tolist()]
    assert net.bias.data().asnumpy().tolist() == [-0.75]
    mxt.MXNetTrainer().export_native(w, -0.75, str(path), "float32")
    plain = gluon.nn.Dense(1, in_units=3)  # float32, as Gluon's default layer is
    plain.load_parameters(str(path))
    assert plain.weight.data().asnumpy().tolist() == [w.tolist()]  # exact in float32 too


def test_import_refuses_other_files(tmp_path):
    path = tmp_path / "other.params"
    nd.save(str(path), {"kernel": nd.zeros((1, 3))})
    with pytest.raises(DlportError, match="not an MXNet Dense"):
        mxt.MXNetTrainer().import_native(str(path))


def test_gpu_mxnet_cannot_use_is_refused_in_one_line(monkeypatch):
    """A GPU MXNet counts but cannot run on (CUDA builds stop at sm_86): the probe's op fails.

    Simulated with this CPU build, where an op on mx.gpu(0) fails the same way."""
    monkeypatch.setattr(mxt, "_gpu_count", lambda: 1)
    mxt._gpu_problem.cache_clear()
    try:
        trainer = mxt.MXNetTrainer()
        assert trainer.devices() == ["cpu"]
        assert trainer.resolve_device("auto") == "cpu"
        with pytest.raises(DlportError, match="sees a GPU but cannot run on it") as info:
            trainer.resolve_device("gpu")
        assert "\n" not in str(info.value)
    finally:
        mxt._gpu_problem.cache_clear()


def test_lstsq_matches_numpy_on_a_harder_problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 12)) @ np.diag(np.logspace(0, 4, 12))  # cond ~ 1e4
    y = rng.normal(size=300)
    expected = np.linalg.lstsq(X, y, rcond=None)[0]
    got = mxt.lstsq(X, y, mx.cpu())
    assert max_relative_difference(got, expected) < 1e-10


def test_cli_run_is_quiet():
    """No MXNet log lines or Python warnings reach the terminal."""
    command = "-m dlport train --framework mxnet --data diabetes --epochs 2 --json -"
    run = subprocess.run(
        [sys.executable, *shlex.split(command)], capture_output=True, text=True, check=True
    )
    assert run.stdout.lstrip().startswith("{")
    noise = [line for line in run.stderr.splitlines() if "Warning" in line or "] ../" in line]
    assert noise == []


def test_numpy_alias_is_set_only_where_mxnet_trains():
    """numpy >= 1.24 lacks ``numpy.bool``, which MXNet 1.9.1 reads: the MXNet trainer's module
    restores it (as numpy 1.23 had it, the builtin ``bool``); importing dlport does not."""
    code = (
        "import warnings, numpy as np, dlport.cli, dlport.common.fitting\n"
        "before = 'bool' in vars(np)\n"
        "import dlport.frameworks.mxnet.trainer\n"
        "warnings.simplefilter('ignore')\n"
        "print(before, np.bool is bool)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.split() == ["False", "True"]


# The data-parallel runs every framework with an engine passes.
from data_parallel_suite import *  # noqa: E402, F403
