"""DlportRegressor: scikit-learn's own estimator checks, run on the framework of this env
(DLPORT_FRAMEWORK, set by tox), and its use in Pipeline and GridSearchCV."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason="the sklearn extra is not installed")

from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from dlport import Dataset, TrainConfig, get_trainer  # noqa: E402
from dlport.sklearn import DlportRegressor  # noqa: E402

FRAMEWORK = os.environ.get("DLPORT_FRAMEWORK", "numpy")
pytestmark = pytest.mark.framework


def _data(n=200, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * [1.0, 10.0, 0.1][:d] + 5.0
    y = X @ np.array([2.0, -0.5, 30.0][:d]) + 1.5 + 0.01 * rng.normal(size=n)
    return X, y


@parametrize_with_checks([DlportRegressor(framework=FRAMEWORK)])
def test_check_estimator(estimator, check):
    check(estimator)


def test_fit_equals_the_trainer_on_the_same_dataset():
    X, y = _data()
    model = DlportRegressor(framework=FRAMEWORK, optimizer="adam", epochs=5, seed=3).fit(X, y)
    result = get_trainer(FRAMEWORK).fit(
        Dataset.from_arrays(X, y), TrainConfig(optimizer="adam", epochs=5, seed=3)
    )
    np.testing.assert_array_equal(model.coef_, result.weights)
    assert model.intercept_ == result.bias
    assert model.history_ == result.history["loss"] and model.n_iter_ == 5
    np.testing.assert_allclose(model.predict(X), result.predict(X), rtol=1e-12, atol=1e-12)


def test_the_exact_solver_recovers_the_coefficients():
    X, y = _data()
    model = DlportRegressor(framework=FRAMEWORK, solver="exact").fit(X, y)
    np.testing.assert_allclose(model.coef_, [2.0, -0.5, 30.0], rtol=1e-3)
    assert model.score(X, y) > 0.999


def test_dataframe_names_the_features_and_the_target():
    pd = pytest.importorskip("pandas")
    X, y = _data()
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    model = DlportRegressor(framework=FRAMEWORK, epochs=3).fit(frame, pd.Series(y, name="price"))
    assert list(model.feature_names_in_) == ["a", "b", "c"]
    assert model.result_.data["feature_names"] == ["a", "b", "c"]
    assert model.result_.data["target"] == "price"
    with pytest.raises(ValueError, match="feature names"):
        model.predict(frame[["c", "b", "a"]])


def test_pyarrow_tables_are_taken_with_their_names():
    pa = pytest.importorskip("pyarrow")
    X, y = _data()
    table = pa.table({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2]})
    model = DlportRegressor(framework=FRAMEWORK, epochs=3).fit(table, pa.chunked_array([y]))
    assert list(model.feature_names_in_) == ["a", "b", "c"]
    plain = DlportRegressor(framework=FRAMEWORK, epochs=3).fit(X, y)
    np.testing.assert_array_equal(model.coef_, plain.coef_)
    np.testing.assert_array_equal(model.predict(table), plain.predict(X))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"lr": -1.0}, "lr must be a positive number"),
        ({"optimizer": "rmsprop"}, "unknown optimizer 'rmsprop'"),
        ({"framework": "caffe"}, "unknown framework 'caffe'"),
    ],
    ids=["negative-lr", "unknown-optimizer", "unknown-framework"],
)
def test_bad_parameters_are_value_errors_at_fit(params, message):
    X, y = _data(n=20)
    model = DlportRegressor(**{"framework": FRAMEWORK, **params})  # accepted: sklearn's rule
    with pytest.raises(ValueError, match=message):
        model.fit(X, y)


@pytest.mark.parametrize(
    ("X", "y", "message"),
    [
        (np.ones((5, 2)), np.ones(4), "inconsistent numbers of samples"),
        (np.array([[1.0, np.nan], [2.0, 3.0], [4.0, 5.0]]), np.ones(3), "NaN"),
        (np.ones(5), np.ones(5), "Expected 2D array"),
    ],
    ids=["mismatched-lengths", "nan", "1-d-X"],
)
def test_bad_data_gets_sklearn_value_errors(X, y, message):
    with pytest.raises(ValueError, match=message):
        DlportRegressor(framework=FRAMEWORK).fit(X, y)


def test_pipeline_and_grid_search_pick_the_learning_rate():
    X, y = _data()
    pipe = make_pipeline(StandardScaler(), DlportRegressor(framework=FRAMEWORK, epochs=20))
    search = GridSearchCV(pipe, {"dlportregressor__lr": [1e-6, 0.05]}, cv=2).fit(X, y)
    assert search.best_params_ == {"dlportregressor__lr": 0.05}
    assert search.best_score_ > 0.99


def test_a_fitted_estimator_pickles_and_clones():
    X, y = _data()
    model = DlportRegressor(framework=FRAMEWORK, epochs=3).fit(X, y)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict(X), model.predict(X))
    fresh = clone(model)
    assert fresh.get_params() == model.get_params() and not hasattr(fresh, "coef_")


def test_parameters_are_train_config_s_fields_with_its_defaults():
    params = DlportRegressor().get_params()
    assert params.pop("framework") == "numpy"
    assert params == TrainConfig().to_dict()
