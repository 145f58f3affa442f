"""The trainer options where frameworks disagree, on the reference: their definitions, their
refusals, and what resume and the command line keep of them (docs/design.md)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from dlport.cli.options import config_to_args
from dlport.common.callbacks import StopWhen
from dlport.common.checkpoint import Checkpoint, Checkpointing
from dlport.common.config import TrainConfig
from dlport.common.data import load_dataset
from dlport.common.errors import DlportError
from dlport.common.losses import LossSpec, mean_loss
from dlport.common.schedules import Schedule
from dlport.common.validation import split_validation
from dlport.frameworks.numpy.trainer import NumpyTrainer, ReferenceRunner


@pytest.fixture(scope="module")
def data():
    return load_dataset("diabetes")


def test_schedules_follow_their_formulas():
    config = TrainConfig(lr=0.1, epochs=10, warmup_epochs=2)
    warm = Schedule.of(config, steps_per_epoch=3)  # W = 6, T = 30
    assert [warm.rate(t) for t in (0, 5, 6)] == [0.1 / 7, 0.1 * 6 / 7, 0.1]
    step = Schedule.of(config.replace(lr_schedule="step:2:0.5", warmup_epochs=0), 3)
    assert [step.rate(t) for t in (5, 6, 12)] == [0.1, 0.05, 0.025]
    exponential = Schedule.of(config.replace(lr_schedule="exponential:0.5"), 3)
    assert exponential.rate(6 + 3) == 0.05 and exponential.rate(6 + 1) == 0.1 * 0.5 ** (1 / 3)
    cosine = Schedule.of(config.replace(lr_schedule="cosine"), 3)
    assert cosine.rate(6) == 0.1 and math.isclose(cosine.rate(6 + 12), 0.05)
    assert cosine.rate(29) < 0.001


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"lr_schedule": "step:0:0.5"}, "EPOCHS must be a positive integer"),
        ({"lr_schedule": "exponential:1.5"}, "GAMMA must be in"),
        ({"lr_schedule": "linear"}, "unknown --lr-schedule 'linear'"),
        ({"warmup_epochs": 5, "epochs": 5}, "warmup_epochs (5) must be fewer than epochs (5)"),
        ({"loss": "huber:0"}, "DELTA must be a positive number"),
        ({"loss": "huber:1", "solver": "exact"}, "exact solver minimizes squared error"),
        ({"weight_decay": -0.1}, "weight_decay must be a non-negative number"),
        ({"validation": 1.0}, "validation must be a fraction in [0, 1)"),
        ({"early_stopping": 3}, "give --validation FRACTION"),
        ({"restore_best": True}, "--restore-best belongs to --early-stopping"),
    ],
    ids=lambda v: "-".join(map(str, v)) if isinstance(v, dict) else "",
)
def test_option_refusals_name_the_fix(changes, message):
    with pytest.raises(DlportError, match=re.escape(message)):
        TrainConfig(**changes)


def test_losses_follow_their_formulas():
    r = np.array([-2.0, -0.5, 0.0, 0.25, 3.0])
    assert mean_loss(LossSpec("mse"), r) == np.mean(r**2)
    assert mean_loss(LossSpec("mae"), r) == np.mean(np.abs(r))
    huber = [1.0 * (2 - 0.5), 0.125, 0.0, 0.03125, 1.0 * (3 - 0.5)]
    assert mean_loss(LossSpec("huber", 1.0), r) == pytest.approx(np.mean(huber), rel=1e-15)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_weight_decay_spares_the_bias(optimizer):
    """Zero features and a fitted bias: no gradient anywhere, so only decay moves anything."""
    X, y = np.zeros((4, 2)), np.ones(4)
    config = TrainConfig(optimizer=optimizer, lr=0.1, weight_decay=0.5)
    runner = ReferenceRunner(X, y, np.ones(2), 1.0, config, NumpyTrainer.conventions)
    runner.step(X, y)
    assert runner.theta.tolist() == [1 - 0.1 * 0.5, 1 - 0.1 * 0.5, 1.0]


def test_validation_split_is_a_pure_function_of_the_seed(data):
    train, held = split_validation(data, 0.25, seed=7)
    again, held_again = split_validation(data, 0.25, seed=7)
    _, other = split_validation(data, 0.25, seed=8)
    assert (held.n_samples, train.n_samples) == (110, 332)
    assert np.array_equal(held.X, held_again.X) and np.array_equal(train.y, again.y)
    assert not np.array_equal(held.X, other.X)
    rows = {tuple(row) for row in data.X}
    assert {tuple(row) for row in held.X} | {tuple(row) for row in train.X} == rows
    with pytest.raises(DlportError, match="leaves at least one row on each side"):
        split_validation(data, 0.0001, seed=0)


def test_streamed_data_is_not_split_yet(tmp_path):
    path = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(path, X=rng.normal(size=(4000, 4)), y=rng.normal(size=4000))
    streamed = load_dataset(str(path), max_memory="64KB")
    with pytest.raises(DlportError, match="--validation: data past --max-memory"):
        NumpyTrainer().fit(streamed, TrainConfig(validation=0.2, epochs=1))


def test_resume_keeps_early_stopping_and_the_best_weights(data, tmp_path):
    config = TrainConfig(
        optimizer="adam", lr=0.1, epochs=30, validation=0.2, early_stopping=4, restore_best=True
    )
    trainer, path = NumpyTrainer(), tmp_path / "half.json"
    full = trainer.fit(data, config)
    stopped_at = len(full.history["loss"])
    half = stopped_at - 2  # past the best epoch: the wait and the best weights must come back
    at_half = StopWhen(lambda epoch, w, b: epoch == half)
    trainer.fit(data, config, callbacks=[Checkpointing(path=path), at_half])
    checkpoint = Checkpoint.read(path)
    assert len(checkpoint.payload["history"]["val_loss"]) == half and "best" in checkpoint.payload
    resumed = trainer.fit(data, config, resume=checkpoint)
    assert resumed.history == full.history
    assert resumed.weights == full.weights and resumed.bias == full.bias


def test_a_cosine_run_resumes_only_to_its_planned_epochs(data, tmp_path):
    config = TrainConfig(epochs=4, lr_schedule="cosine")
    path = tmp_path / "c.json"
    NumpyTrainer().fit(data, config, callbacks=[Checkpointing(path=path)])
    with pytest.raises(DlportError, match="resume with --epochs 4"):
        NumpyTrainer().fit(data, config.replace(epochs=6), resume=Checkpoint.read(path))


def test_every_option_goes_to_a_child_process_and_back():
    from dlport.cli.options import config_from_args
    from dlport.cli.parser import build_parser

    config = TrainConfig(
        optimizer="adamw",
        weight_decay=0.01,
        lr_schedule="step:2:0.5",
        warmup_epochs=1,
        loss="huber:0.5",
        validation=0.2,
        early_stopping=3,
        restore_best=True,
        clip_norm=1.0,
    )
    args = build_parser().parse_args(["train", "--framework", "numpy", *config_to_args(config)])
    assert config_from_args(args) == config


@pytest.mark.parametrize("solver", ["exact", "gd"])
def test_no_intercept_streamed_equals_in_memory(tmp_path, solver):
    rng = np.random.default_rng(1)
    X = rng.normal(2.0, 1.0, size=(3000, 3))
    path = tmp_path / "d.npz"
    np.savez(path, X=X, y=X @ [1.0, -2.0, 0.5] + 3.0)  # a true intercept the fit must not take
    config = TrainConfig(solver=solver, fit_intercept=False, epochs=2, batch_size=50)
    memory = NumpyTrainer().fit(load_dataset(str(path)), config)
    streamed = NumpyTrainer().fit(load_dataset(str(path), max_memory="64KB"), config)
    assert streamed.data["streamed"] and memory.bias == streamed.bias == 0.0
    expected = np.linalg.lstsq(X, X @ [1.0, -2.0, 0.5] + 3.0, rcond=None)[0]
    if solver == "exact":
        np.testing.assert_allclose(memory.weights, expected, rtol=1e-12)
        np.testing.assert_allclose(streamed.weights, expected, rtol=1e-12)
    else:  # the same rows in another order: close, not equal
        np.testing.assert_allclose(streamed.weights, memory.weights, rtol=0.2)


def test_no_intercept_scales_about_the_origin(data):
    result = NumpyTrainer().fit(data, TrainConfig(solver="exact", fit_intercept=False))
    assert result.standardization["x_mean"] == [0.0] * data.n_features
    rms = np.sqrt(np.mean(data.X**2, axis=0))
    np.testing.assert_allclose(result.standardization["x_scale"], rms, rtol=1e-12)
