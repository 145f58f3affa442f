"""A scikit-learn estimator over every framework: ``DlportRegressor(framework="torch")``.

Needs the ``sklearn`` extra (scikit-learn, pandas). The framework is imported at ``fit`` and
``predict``, never kept on the estimator, so an estimator clones and pickles anywhere.

    >>> from dlport.sklearn import DlportRegressor
    >>> model = DlportRegressor(framework="numpy", optimizer="adam", epochs=20).fit(X, y)
    >>> model.coef_, model.intercept_, model.history_[-1], model.score(X, y)
"""

from __future__ import annotations

import dataclasses

import numpy as np

try:
    from sklearn.base import BaseEstimator, RegressorMixin
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise ImportError(
        f"dlport.sklearn needs scikit-learn >= 1.6 ({exc}); pip install 'dlport[sklearn]'"
    ) from None

from dlport.common.config import TrainConfig
from dlport.common.data import Dataset
from dlport.common.errors import DlportError
from dlport.common.registry import get_trainer

# TrainConfig's field defaults, read without building one (nothing of dlport runs at import)
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


class DlportRegressor(RegressorMixin, BaseEstimator):
    """Linear regression trained by one framework's port, with dlport's numerical contract.

    Parameters are ``framework`` (a name from ``dlport.framework_names()``) and the fields of
    ``dlport.TrainConfig``, with the same defaults. After ``fit``: ``coef_`` and
    ``intercept_`` (original units), ``history_`` (training loss per epoch, standardized
    units), ``n_iter_`` (epochs run), ``n_features_in_``, ``feature_names_in_`` (when X has
    string column names) and ``result_`` (the ``TrainResult``, as ``dlport train`` writes).
    """

    def __init__(
        self,
        framework: str = "numpy",
        *,
        optimizer: str = _DEFAULTS["optimizer"],
        lr: float = _DEFAULTS["lr"],
        momentum: float = _DEFAULTS["momentum"],
        beta1: float = _DEFAULTS["beta1"],
        beta2: float = _DEFAULTS["beta2"],
        eps: float = _DEFAULTS["eps"],
        clip_norm: float | None = _DEFAULTS["clip_norm"],
        weight_decay: float = _DEFAULTS["weight_decay"],
        lr_schedule: str = _DEFAULTS["lr_schedule"],
        warmup_epochs: int = _DEFAULTS["warmup_epochs"],
        loss: str = _DEFAULTS["loss"],
        validation: float = _DEFAULTS["validation"],
        early_stopping: int | None = _DEFAULTS["early_stopping"],
        restore_best: bool = _DEFAULTS["restore_best"],
        epochs: int = _DEFAULTS["epochs"],
        batch_size: int | None = _DEFAULTS["batch_size"],
        seed: int = _DEFAULTS["seed"],
        dtype: str = _DEFAULTS["dtype"],
        device: str = _DEFAULTS["device"],
        solver: str = _DEFAULTS["solver"],
        standardize: bool = _DEFAULTS["standardize"],
        fit_intercept: bool = _DEFAULTS["fit_intercept"],
        tf32: bool = _DEFAULTS["tf32"],
    ):
        self.framework = framework
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.clip_norm = clip_norm
        self.weight_decay = weight_decay
        self.lr_schedule = lr_schedule
        self.warmup_epochs = warmup_epochs
        self.loss = loss
        self.validation = validation
        self.early_stopping = early_stopping
        self.restore_best = restore_best
        self.epochs = epochs
        self.batch_size = batch_size
        self.seed = seed
        self.dtype = dtype
        self.device = device
        self.solver = solver
        self.standardize = standardize
        self.fit_intercept = fit_intercept
        self.tf32 = tf32

    def fit(self, X, y):
        target = _target_name(y)
        X, y = validate_data(
            self, _frame(X), _column(y), dtype=np.float64, y_numeric=True, ensure_min_samples=2
        )
        config = self._config()
        names = getattr(self, "feature_names_in_", None)
        data = Dataset.from_arrays(
            X, y, None if names is None else list(names), target, "fit(X, y)"
        )
        result = _trainer(self.framework).fit(data, config)
        self.coef_ = np.asarray(result.weights, dtype=np.float64)
        self.intercept_ = float(result.bias)
        self.history_ = list(result.history["loss"])
        self.n_iter_ = len(self.history_)
        self.result_ = result
        return self

    def predict(self, X):
        """The framework's own forward pass, in the training dtype and on its device."""
        check_is_fitted(self)
        X = validate_data(self, _frame(X), dtype=np.float64, reset=False)
        trainer = _trainer(self.framework)
        return trainer.predict(self.coef_, self.intercept_, X, dtype=self.dtype, device=self.device)

    def _config(self) -> TrainConfig:
        params = {f.name: getattr(self, f.name) for f in dataclasses.fields(TrainConfig)}
        try:
            return TrainConfig(**params)
        except DlportError as exc:
            raise ValueError(f"{type(self).__name__}: {exc}") from None


def _trainer(framework: str):
    try:
        return get_trainer(framework)
    except DlportError as exc:
        raise ValueError(str(exc)) from None


def _frame(X):
    """A pyarrow Table as pandas (feature names kept); anything else as given."""
    if type(X).__module__.startswith("pyarrow") and hasattr(X, "to_pandas"):
        return X.to_pandas()
    return X


def _column(y):
    """A pyarrow column (Array, ChunkedArray, one-column Table) as a pandas Series."""
    if type(y).__module__.startswith("pyarrow") and hasattr(y, "to_pandas"):
        y = y.to_pandas()
        if hasattr(y, "columns") and len(y.columns) == 1:
            y = y.iloc[:, 0]
    return y


def _target_name(y) -> str:
    name = getattr(y, "name", None)
    return name if isinstance(name, str) and name else "y"
