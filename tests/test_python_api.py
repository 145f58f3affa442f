"""The documented Python API (README, "Python API"): arrays in, a result that predicts, and a
one-line refusal for what the protocol does not take. Runs on the framework of this env."""

from __future__ import annotations

import numpy as np
import pytest

import dlport
from dlport import Dataset, DlportError, TrainConfig


def _arrays(n=64, d=3):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n, d)) * 3.0 + 2.0
    return X, X @ np.arange(1.0, d + 1) - 4.0 + 0.1 * rng.normal(size=n)


def test_from_arrays_names_the_columns_and_checks_them_as_files_are():
    X, y = _arrays()
    data = Dataset.from_arrays(X, y.reshape(-1, 1))
    assert data.feature_names == ("x0", "x1", "x2") and data.target_name == "y"
    assert data.y.shape == (64,) and data.source == "arrays"
    named = Dataset.from_arrays(X, y, ["a", "b", "c"], "price")
    assert named.feature_names == ("a", "b", "c") and named.target_name == "price"
    X[3, 1] = np.nan
    with pytest.raises(DlportError, match="arrays: features contain NaN or inf .*data row 4"):
        Dataset.from_arrays(X, y)
    with pytest.raises(DlportError, match="X has 64 rows but y has 63"):
        Dataset.from_arrays(X, y[:-1])
    with pytest.raises(DlportError, match="X must be 2-D"):
        Dataset.from_arrays(y, y)


def test_fit_without_a_config_uses_the_defaults(trainer):
    data = Dataset.from_arrays(*_arrays())
    assert trainer.fit(data).weights == trainer.fit(data, TrainConfig()).weights


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((np.ones((4, 2)), np.ones(4)), "fit takes a Dataset, got ndarray; pass .*from_arrays"),
        (("diabetes",), "fit takes a Dataset, got str; pass .*load_dataset"),
        ((None, {"lr": 0.1}), "fit's config must be a TrainConfig, got dict"),
    ],
    ids=["arrays", "a-spec", "a-dict-config"],
)
def test_fit_refuses_what_is_not_a_dataset_and_a_config_in_one_line(trainer, args, message):
    args = (Dataset.from_arrays(*_arrays()), *args[1:]) if args[0] is None else args
    with pytest.raises(DlportError, match=message) as caught:
        trainer.fit(*args)
    assert "\n" not in str(caught.value)


def test_the_result_predicts_in_float64_whatever_trained_it(trainer):
    X, y = _arrays()
    result = trainer.fit(Dataset.from_arrays(X, y), TrainConfig(epochs=3))
    expected = X @ np.array(result.weights) + result.bias
    np.testing.assert_array_equal(result.predict(X), expected)
    np.testing.assert_array_equal(result.predict(X.tolist()), expected)
    with pytest.raises(DlportError, match=r"shape \(64, 2\) but the model has 3 features"):
        result.predict(X[:, :2])


def test_the_memory_layout_of_x_does_not_change_a_bit(trainer):
    """A Fortran-ordered X (what pandas gives from Arrow) trains and predicts as a C one."""
    X, y = _arrays(n=300, d=6)
    config = TrainConfig(optimizer="adam", epochs=4)
    c_order = trainer.fit(Dataset.from_arrays(X, y), config)
    f_order = trainer.fit(Dataset.from_arrays(np.asfortranarray(X), y), config)
    assert f_order.weights == c_order.weights and f_order.bias == c_order.bias
    w, b = np.array(c_order.weights), c_order.bias
    np.testing.assert_array_equal(
        trainer.predict(w, b, np.asfortranarray(X)), trainer.predict(w, b, X)
    )


def test_the_public_names_are_exported():
    for name in ("Dataset", "TrainConfig", "TrainResult", "get_trainer", "load_dataset"):
        doc = getattr(dlport, name).__doc__ or ""
        assert name in dlport.__all__ and doc and not doc.startswith(f"{name}(")  # a dataclass's
