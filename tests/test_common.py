"""Config, batching, initialization, standardization, metrics, results and the registry."""

from __future__ import annotations

import os

import numpy as np
import pytest

from dlport.common.batching import epoch_order, iter_batches, split_batches, steps_per_epoch
from dlport.common.config import TrainConfig, parse_batch_size
from dlport.common.errors import DlportError
from dlport.common.init import initial_params
from dlport.common.metrics import max_relative_difference, regression_metrics
from dlport.common.registry import FRAMEWORKS, check_name, get_trainer
from dlport.common.results import SCHEMA_VERSION, TrainResult
from dlport.common.standardize import Standardizer


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"optimizer": "rmsprop"}, "unknown optimizer"),
        ({"lr": 0.0}, "lr must be a positive number"),
        ({"lr": float("nan")}, "lr must be a positive number"),
        ({"batch_size": 0}, "batch size must be a positive integer"),
        ({"epochs": 1.5}, "epochs must be a positive integer"),
        ({"momentum": 1.0}, "momentum must be in"),
        ({"dtype": "float16"}, "unknown dtype"),
        ({"device": "tpu"}, "unknown device"),
        ({"seed": -1}, "seed must be"),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else None,
)
def test_config_refuses_bad_values(changes, message):
    with pytest.raises(DlportError, match=message):
        TrainConfig(**changes)


def test_config_round_trips_and_rejects_unknown_keys():
    config = TrainConfig(optimizer="adam", batch_size=None)
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(DlportError, match="unknown config keys"):
        TrainConfig.from_dict({"learning_rate": 1})


def test_batch_size_parsing():
    assert parse_batch_size("full") is None and parse_batch_size("64") == 64
    assert TrainConfig(batch_size=None).batch_size_for(10) == 10
    assert TrainConfig(batch_size=64).batch_size_for(10) == 10
    for bad in ("0", "-3", "x"):
        with pytest.raises(DlportError):
            parse_batch_size(bad)


def test_epoch_order_is_a_seeded_permutation():
    a = epoch_order(100, seed=1, epoch=0, batch_size=10)
    assert sorted(a.tolist()) == list(range(100))
    assert np.array_equal(a, epoch_order(100, seed=1, epoch=0, batch_size=10))
    assert not np.array_equal(a, epoch_order(100, seed=1, epoch=1, batch_size=10))
    assert not np.array_equal(a, epoch_order(100, seed=2, epoch=0, batch_size=10))
    assert np.array_equal(epoch_order(5, 0, 0, batch_size=5), np.arange(5))


def test_epoch_order_is_pinned_across_numpy_versions():
    # Computed once; the MXNet env (numpy 1.23) and current numpy must both give it.
    assert epoch_order(10, seed=0, epoch=0, batch_size=3).tolist() == PINNED_ORDER


PINNED_ORDER = [9, 1, 3, 8, 7, 6, 0, 4, 2, 5]


def test_batches_split_with_the_partial_batch_last():
    order = np.arange(10)
    full, tail = split_batches(order, 4)
    assert full.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]] and tail.tolist() == [8, 9]
    assert [b.tolist() for b in iter_batches(order, 4)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert steps_per_epoch(10, 4) == 3 and steps_per_epoch(8, 4) == 2


def test_initial_params_are_seeded_and_bounded():
    w, b = initial_params(16, seed=3)
    w2, b2 = initial_params(16, seed=3)
    assert np.array_equal(w, w2) and b == b2
    assert np.all(np.abs(w) <= 0.25) and abs(b) <= 0.25
    assert not np.array_equal(w, initial_params(16, seed=4)[0])
    # Pinned, like the batch order, so every numpy version loads the same start.
    w3, b3 = initial_params(3, seed=0)
    assert w3.tolist() == [-0.48402270764236055, -0.1126551341104734, 0.11695870097475539]
    assert b3 == -0.40980294946735785


def test_standardization_is_undone_on_the_weights():
    rng = np.random.default_rng(0)
    X = rng.normal(5.0, 3.0, (200, 4))
    X[:, 2] = 0.1  # constant (std is rounding noise, 1e-17): must not be scaled up to +-1
    w, b = np.array([1.0, -2.0, 0.0, 0.5]), 3.0
    y = X @ w + b
    scaler = Standardizer.fit(X, y)
    Xs, ys = scaler.transform(X, y)
    coef = np.linalg.lstsq(np.hstack([Xs, np.ones((200, 1))]), ys, rcond=None)[0]
    weights, bias = scaler.to_original(coef[:-1], coef[-1])
    np.testing.assert_allclose(X @ weights + bias, y, atol=1e-9)
    np.testing.assert_allclose(weights[[0, 1, 3]], w[[0, 1, 3]], atol=1e-9)


def test_metrics():
    m = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    assert m["mse"] == pytest.approx(4 / 3) and m["mae"] == pytest.approx(2 / 3)
    assert m["rmse"] == pytest.approx(np.sqrt(4 / 3)) and m["r2"] == pytest.approx(1 - 4 / 2)
    assert regression_metrics(np.ones(3), np.ones(3))["r2"] == 1.0
    assert max_relative_difference([100.0, 0.5], [101.0, 0.5]) == pytest.approx(1 / 101)
    assert max_relative_difference([0.001], [0.0]) == pytest.approx(0.001)


def test_result_json_is_versioned(diabetes):
    result = get_trainer("numpy").fit(diabetes, TrainConfig(epochs=2))
    assert result.schema_version == SCHEMA_VERSION
    assert TrainResult.from_json(result.to_json()) == result
    future = result.to_dict() | {"schema_version": SCHEMA_VERSION + 1}
    with pytest.raises(DlportError, match="schema version"):
        TrainResult.from_dict(future)
    with pytest.raises(DlportError, match="not valid JSON"):
        TrainResult.from_json("{")


def test_registry_names_the_env_for_a_missing_framework(monkeypatch):
    with pytest.raises(DlportError, match="unknown framework 'caffe'"):
        check_name("caffe")
    monkeypatch.setitem(
        FRAMEWORKS,
        "torch",
        FRAMEWORKS["torch"].__class__("dlport_no_such_module:Trainer", "torch", "torch"),
    )
    with pytest.raises(DlportError, match=r"tox -e torch.*dlport\[torch\]"):
        get_trainer("torch")


def test_a_column_constant_up_to_rounding_is_not_scaled_up():
    X = np.full((10, 1), 0.1)
    X[0, 0] = np.nextafter(0.1, 1.0)  # one ulp apart: a std of ~4e-18 is rounding, not data
    assert X.std() > 0
    scaler = Standardizer.fit(X, np.arange(10.0))
    assert scaler.x_scale.tolist() == [1.0]
    assert np.abs(scaler.transform(X, np.arange(10.0))[0]).max() < 1e-15


def test_unsupported_pythons_are_named_per_registered_framework():
    from dlport.common.pythons import UNSUPPORTED_FROM, unsupported_reason
    from dlport.common.registry import framework_names

    assert set(UNSUPPORTED_FROM) <= set(framework_names())
    assert unsupported_reason("mxnet", (3, 12, 1)) is None
    assert unsupported_reason("torch", (3, 13, 0)) is None
    reason = unsupported_reason("mxnet", (3, 13, 0))
    assert reason.startswith("mxnet on Python 3.13: ") and "Python 3.10-3.12" in reason


@pytest.mark.parametrize(("given", "advised"), [(None, False), ("1", True)])
def test_numpy_huge_page_advice_is_off_unless_the_user_set_numpys_switch(
    given, advised, monkeypatch
):
    from dlport.common.hugepages import VARIABLE, avoid_hugepage_stalls, set_advice

    assert VARIABLE == "NUMPY_MADVISE_HUGEPAGE"  # NumPy's own name: children read it at import
    before = set_advice(advised)  # this process as NumPy would have started under `given`
    try:
        if given is None:
            monkeypatch.delenv(VARIABLE, raising=False)
        else:
            monkeypatch.setenv(VARIABLE, given)
        avoid_hugepage_stalls()
        assert os.environ[VARIABLE] == (given or "0")  # inherited by the children dlport starts
        assert set_advice(True) is advised  # the state avoid_hugepage_stalls left here
    finally:
        set_advice(before)
